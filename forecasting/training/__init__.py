"""Training: config, candidate models, engines, backtest, selection, intervals, forecasts,
reconciliation, paths, report.

``forecasting.training.pipeline.fit`` is the entry point; this package imports nothing heavy
on its own so that reading a config does not pull statsforecast.
"""
