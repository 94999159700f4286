"""Data in: the panel contract, code lists, readers of the raw formats, synth and ingest."""
