"""The real-data evaluation suite's parts; ``benchmarks/real_suite.py`` runs them."""
