"""Load benchmark: the spendcast service vs `mlflow models serve` on the same registered model.

Starts both servers on loopback, drives each scenario with a bounded async loop (httpx, fixed
duration AND fixed request budget, fixed concurrency) and prints requests/s, p50 and p99 for:

* ``hello``     ``GET /healthz`` of the service: the ceiling of this server + client;
* ``forecast``  ``GET /v1/forecast`` for one series over the trained horizon;
* ``detect``    ``POST /v1/anomalies/detect`` with 50 observations (stored);
* ``mlflow``    ``POST /invocations`` of the MLflow scoring server, one series, same horizon.

Then the goals as ratios measured in this run: forecast throughput vs MLflow (>= 5x) and vs
hello (>= 0.6x); forecast p99 vs hello p99 at the same concurrency (<= 1.5x).

Usage::

    python benchmarks/serve_load.py                       # trains a small model first
    python benchmarks/serve_load.py --model-uri models:/spendcast@champion \\
        --tracking-uri sqlite:///mlflow.db
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    name: str
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, timeout: float, proc: subprocess.Popen[bytes]) -> float:
    """Seconds until ``url`` answers 200."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before {url} was up")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic() - t0
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not up after {timeout}s")


async def drive(
    base: str,
    make: Callable[[httpx.AsyncClient], Any],
    *,
    name: str,
    concurrency: int,
    duration: float,
    max_requests: int,
) -> Result:
    """Run ``make(client)`` requests from ``concurrency`` workers until time or budget ends."""
    latencies: list[float] = []
    errors = 0
    issued = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        for _ in range(min(concurrency, 20)):  # warm-up: open connections
            await make(client)
        t0 = time.perf_counter()
        stop_at = t0 + duration

        async def worker() -> None:
            nonlocal errors, issued
            while issued < max_requests and time.perf_counter() < stop_at:
                issued += 1
                s = time.perf_counter()
                try:
                    r = await make(client)
                except httpx.TransportError:  # dropped connection: an error, not a crash
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - s)
                if r.status_code != 200:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    lat = np.asarray(latencies) * 1000
    return Result(
        name,
        len(latencies),
        errors,
        elapsed,
        float(np.percentile(lat, 50)),
        float(np.percentile(lat, 99)),
    )


def build_model(workdir: Path) -> tuple[str, str]:
    """Train the fast configuration on a seeded panel and register it; ``(uri, tracking)``."""
    sys.path.insert(0, str(ROOT))
    tracking_uri = f"sqlite:///{workdir / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    os.environ["SPENDCAST_ARTIFACT_ROOT"] = str(workdir / "mlruns")
    from forecasting.tracking import training_run
    from forecasting.training.config import TrainConfig
    from forecasting.training.pipeline import fit
    from tests.panels import make_panel

    panel, meta = make_panel(seed=0)
    config = TrainConfig(models=["SeasonalNaive", "AutoETS"], windows=3, n_paths=200)
    result = fit(panel, meta, config)
    with training_run(config, experiment="serve-load") as run:
        run.log_result(result)
        run.register("spendcast-bench", promote=True)
    return "models:/spendcast-bench@champion", tracking_uri


def main() -> None:  # noqa: C901 - a script
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model-uri", help="registered model URI (default: train one)")
    ap.add_argument("--tracking-uri", help="MLflow tracking URI of that model")
    ap.add_argument("--duration", type=float, default=6.0, help="seconds per scenario")
    ap.add_argument("--max-requests", type=int, default=20_000, help="request budget")
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="spendcast-load-"))
    if args.model_uri:
        uri, tracking_uri = (
            args.model_uri,
            args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"),
        )
    else:
        t0 = time.perf_counter()
        uri, tracking_uri = build_model(work)
        print(f"trained and registered {uri} in {time.perf_counter() - t0:.1f}s")

    key = secrets.token_urlsafe(24)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "SPENDCAST_MODEL_URI": uri,
        "SPENDCAST_DATABASE_URL": f"sqlite:///{work / 'spendcast.db'}",
        "SPENDCAST_CACHE_DIR": str(work / "cache"),
        "SPENDCAST_API_KEYS": key,
        "SPENDCAST_LOG_LEVEL": "WARNING",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",  # mlflow -> uvicorn
    }
    sp, mp = free_port(), free_port()
    py = sys.executable
    subprocess.run(  # the store's schema is an explicit step: `spendcast db upgrade`
        [str(Path(py).parent / "spendcast"), "db", "upgrade"], env=env, cwd=ROOT, check=True
    )
    service = subprocess.Popen(
        [py, "-m", "uvicorn", "service.main:app", "--host", "127.0.0.1", "--port", str(sp),
         "--no-access-log", "--log-level", "warning"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    mlflow_bin = str(Path(py).parent / "mlflow")
    mlflow_srv = subprocess.Popen(
        [mlflow_bin, "models", "serve", "-m", uri, "--env-manager", "local", "-h", "127.0.0.1",
         "-p", str(mp), "-w", "1"],
        env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        ready_s = wait_for(f"http://127.0.0.1:{sp}/readyz", 60, service)
        wait_for(f"http://127.0.0.1:{mp}/ping", 180, mlflow_srv)
        svc = f"http://127.0.0.1:{sp}"
        model = httpx.get(svc + "/v1/model").json()
        horizon = int(model["horizon"])
        series = httpx.get(svc + "/v1/series").json()["series"]
        uid = next(s["unique_id"] for s in series if s["unique_id"].count("/") == 1)
        first = dt.date.fromisoformat(
            httpx.get(svc + "/v1/forecast", params={"unique_id": uid}).json()["ds"][0]
        )
        ids = [s["unique_id"] for s in series]
        obs = [
            {"unique_id": ids[i % len(ids)], "ds": first.isoformat(), "y": 1000.0 + i}
            for i in range(50)
        ]
        auth = {"Authorization": f"Bearer {key}"}
        inv = {"dataframe_split": {"columns": ["unique_id", "horizon"], "data": [[uid, horizon]]}}
        check = httpx.post(f"http://127.0.0.1:{mp}/invocations", json=inv, timeout=60)
        if check.status_code != 200:
            raise RuntimeError(f"mlflow /invocations answered {check.status_code}: {check.text}")

        scenarios: list[tuple[str, str, Callable[[httpx.AsyncClient], Any]]] = [
            ("hello", svc, lambda c: c.get("/healthz")),
            (
                "forecast",
                svc,
                lambda c: c.get("/v1/forecast", params={"unique_id": uid, "horizon": horizon}),
            ),
            (
                "detect50",
                svc,
                lambda c: c.post("/v1/anomalies/detect", json={"observations": obs}, headers=auth),
            ),
            ("mlflow", f"http://127.0.0.1:{mp}", lambda c: c.post("/invocations", json=inv)),
        ]
        results = {}
        for name, base, make in scenarios:
            results[name] = asyncio.run(
                drive(
                    base,
                    make,
                    name=name,
                    concurrency=args.concurrency,
                    duration=args.duration,
                    max_requests=args.max_requests,
                )
            )
    finally:
        for p in (service, mlflow_srv):
            p.terminate()
        for p in (service, mlflow_srv):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()

    print(f"model {uri}: horizon {horizon}, {len(ids)} series; service ready in {ready_s:.2f}s")
    print(
        f"concurrency {args.concurrency}, {args.duration:.0f}s or {args.max_requests} requests "
        "per scenario, loopback, one client process"
    )
    print(
        f"{'scenario':<10} {'requests':>9} {'errors':>6} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
    )
    for r in results.values():
        print(
            f"{r.name:<10} {r.requests:>9} {r.errors:>6} {r.rps:>9.1f} "
            f"{r.p50_ms:>8.2f} {r.p99_ms:>8.2f}"
        )
    f, h, m = results["forecast"], results["hello"], results["mlflow"]
    ratios = [
        ("forecast rps / mlflow rps", f.rps / m.rps, ">= 5", f.rps / m.rps >= 5),
        ("forecast rps / hello rps", f.rps / h.rps, ">= 0.6", f.rps / h.rps >= 0.6),
        ("forecast p99 / hello p99", f.p99_ms / h.p99_ms, "<= 1.5", f.p99_ms / h.p99_ms <= 1.5),
    ]
    for label, value, goal, ok in ratios:
        print(f"{label:<28} {value:7.2f}  (goal {goal}: {'met' if ok else 'NOT met'})")


if __name__ == "__main__":
    main()
