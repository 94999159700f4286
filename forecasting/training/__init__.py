"""Training: config, candidate models, backtest, selection, intervals, reconciliation, paths.

``forecasting.training.pipeline.fit`` is the entry point; this package imports nothing heavy
on its own so that reading a config does not pull statsforecast.
"""
