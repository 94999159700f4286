"""`spendcast demo` end to end in a subprocess: synth -> ingest -> train -> register -> serve."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.service.server import free_port

BIN = Path(sys.executable).parent / "spendcast"
FAST = """
models = ["SeasonalNaive", "AutoETS"]
ensembles = []
calendar = false
horizon = 12
windows = 3
levels = [80, 95]
n_paths = 100
"""


def test_demo_trains_registers_and_serves(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "fast.toml").write_text(FAST)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPENDCAST_", "MLFLOW_"))}
    env["SPENDCAST_CACHE_DIR"] = str(tmp_path / "cache")
    log = (tmp_path / "demo.log").open("w")
    proc = subprocess.Popen(
        [BIN, "demo", "--rows-per-month", "1000", "--start", "2019-01", "--end", "2023-12"]
        + ["--config", "fast.toml", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, (tmp_path / "demo.log").read_text()
            assert time.monotonic() < deadline, "demo not serving after 240 s"
            time.sleep(0.5)
        base = f"http://127.0.0.1:{port}"
        model = httpx.get(f"{base}/v1/model", timeout=5).json()
        assert (model["name"], model["alias"]) == ("spendcast", "champion")
        assert httpx.get(f"{base}/readyz").json()["store"]["status"] == "ok"  # demo upgraded it
        assert model["last_ds"].startswith("2023-12") and model["horizon"] == 12
        year = httpx.get(
            f"{base}/v1/projections/annual", params={"unique_id": "total", "year": 2024}
        ).json()
        assert year["months_projected"] == 12 and year["intervals"]
        lo, hi = year["intervals"][-1]["lo"], year["intervals"][-1]["hi"]
        assert lo <= year["total"] <= hi
        # the printed key is the one the service accepts on write endpoints
        out = (tmp_path / "demo.log").read_text()
        key = next(line.split()[2] for line in out.splitlines() if "API key" in line)
        obs = {"observations": [{"unique_id": "total", "ds": "2024-01-01", "y": 1.0}]}
        url = f"{base}/v1/anomalies/detect"
        assert httpx.post(url, json=obs, timeout=10).status_code == 401
        ok = httpx.post(url, json=obs, headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert ok.status_code == 200 and ok.json()["results"][0]["direction"] == "below"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    # embedded defaults: files, panel, MLflow store and service database under the workdir
    assert (tmp_path / "demo" / "panel.parquet").exists()
    assert len(list((tmp_path / "demo" / "raw").glob("A*.csv.gz"))) == 60
    assert (tmp_path / "mlflow.db").exists() and (tmp_path / "mlruns").is_dir()
    assert (tmp_path / "spendcast.db").exists()
    assert f"127.0.0.1:{port}/docs" in (tmp_path / "demo.log").read_text()
