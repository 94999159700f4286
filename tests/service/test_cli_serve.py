"""`spendcast serve` starts uvicorn on the app; healthy at once, not ready without a model;
its banner warns when no API key is configured and when the store needs an upgrade."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.service.server import free_port

BIN = Path(sys.executable).parent / "spendcast"


@pytest.mark.slow
def test_serve_command_starts_and_reports_not_ready(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPENDCAST_")}
    env |= {
        "SPENDCAST_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}",
        "SPENDCAST_CACHE_DIR": str(tmp_path / "cache"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "COLUMNS": "250",
    }
    proc = subprocess.Popen(
        [BIN, "serve", "--port", str(port), "--model", "models:/missing@champion"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                if r.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline
            time.sleep(0.2)
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 503
        assert ready.headers["content-type"] == "application/problem+json"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    assert "models:/missing@champion" in out and f"127.0.0.1:{port}/docs" in out
    assert "warning: no API key configured" in out  # the banner says it (and the log)
    assert (
        '"level": "WARNING"' in out and "no API key configured" in out.split("spendcast serve")[-1]
    )
    assert "run `spendcast db upgrade`" in out  # the store was never upgraded
