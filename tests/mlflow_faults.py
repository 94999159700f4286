"""MLflow against a registry that is down, without slowing the rest of the test session.

MLflow creates a SQL store's engine under a class-wide lock and retries a failing database
for ~100 s (``mlflow.store.db.utils.MAX_RETRY_COUNT``): an attempt left running by a test
would block every later test that opens another MLflow store. Inside
:func:`quick_mlflow_retries` a failing database is tried once, and on exit it waits until no
attempt holds that lock any more.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

__all__ = ["quick_mlflow_retries", "hanging_postgres"]


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


@contextmanager
def hanging_postgres(password: str = "pw") -> Iterator[str]:
    """A PostgreSQL URL (with ``password``) on a loopback port that accepts connections and
    never answers (a registry that hangs), inside :func:`quick_mlflow_retries`."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    with quick_mlflow_retries():
        try:
            port = server.getsockname()[1]
            yield f"postgresql+psycopg://spendcast:{password}@127.0.0.1:{port}/mlflow"
        finally:
            stop.set()
            t.join()
            for s in held:
                s.close()
            server.close()
