"""MLflow against a registry that is down, without slowing the rest of the test session.

MLflow creates a SQL store's engine under a class-wide lock and retries a failing database
for ~100 s (``mlflow.store.db.utils.MAX_RETRY_COUNT``): an attempt left running by a test
would block every later test that opens another MLflow store. Inside
:func:`quick_mlflow_retries` a failing database is tried once, and on exit it waits until no
attempt holds that lock any more.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

__all__ = ["quick_mlflow_retries"]


@contextmanager
def quick_mlflow_retries(timeout: float = 30) -> Iterator[None]:
    from mlflow.store.db import utils
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as Registry
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as Tracking

    mp = pytest.MonkeyPatch()
    mp.setattr(utils, "MAX_RETRY_COUNT", 1)
    try:
        yield
    finally:
        deadline = time.monotonic() + timeout
        for lock in (Tracking._engine_map_lock, Registry._engine_map_lock):
            if lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                lock.release()
        mp.undo()
