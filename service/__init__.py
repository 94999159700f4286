"""The spendcast HTTP service (FastAPI)."""
