"""Monitoring: judging observations against a trained bundle, completion, projections."""
