"""Alembic migrations of the observation store (run by ``spendcast db upgrade``)."""
