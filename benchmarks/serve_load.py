"""Load benchmark: the spendcast service vs `mlflow models serve` and a bare FastAPI app.

Starts the service, `mlflow models serve` on the same registered model and a bare FastAPI
"hello" app on loopback, then drives each scenario with ``wrk`` (a compiled load generator:
a Python client saturates before the server does; Debian package ``wrk``), 2 threads, fixed
connections and duration, and prints requests/s, p50 and p99:

* ``bare-hello``  ``GET /`` of a bare FastAPI app under the same uvicorn: the framework ceiling;
* ``hello``       ``GET /healthz`` of the service;
* ``forecast``    ``GET /v1/forecast`` for one series over the trained horizon (after its
                  first answer, from the read cache: ``service/read_cache.py``);
* ``fc-uncached`` the same with a query string never asked before on every request (an unknown
                  ``miss`` parameter): the route's whole path through FastAPI, every time;
* ``detect50``    ``POST /v1/anomalies/detect`` with 50 observations (stored);
* ``mlflow``      ``POST /invocations`` of the MLflow scoring server, one series, same horizon.

Then the goals as ratios measured in this run: forecast throughput vs MLflow (>= 5x) and vs
the service's hello (>= 0.6x); forecast p99 vs hello p99 (<= 1.5x). ``--during-reload`` then
drives the forecast for ``--reload-window`` seconds while ``POST /v1/admin/reload`` swaps a new
copy of the model in, and compares that p99 with the steady state (goal <= 2x, no error).
The service's cold start (process start to ``/readyz`` 200) is printed too. Without ``wrk``
on the PATH the load comes from an httpx loop (its ratios are a lower bound only).

Usage::

    python benchmarks/serve_load.py --during-reload       # trains a small model first
    python benchmarks/serve_load.py --model-uri models:/spendcast@champion \\
        --tracking-uri sqlite:///mlflow.db
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import secrets
import shutil
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
            try:
                await make(client)
            except httpx.TransportError:
                pass
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


_WRK_LUA = """
wrk.method = "{method}"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
{auth}
"""

_WRK_DISTINCT = """
-- every request a query string not asked before (per thread id and counter): no cached answer
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  n = 0
end
function request()
  n = n + 1
  return wrk.format("GET", wrk.path .. "&miss=" .. tid .. "-" .. n)
end
"""

HELLO_APP = """
from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def hello() -> dict[str, str]:
    return {"hello": "world"}
"""


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def wrk(
    url: str,
    *,
    name: str,
    connections: int,
    duration: float,
    method: str = "GET",
    body: str | None = None,
    headers: dict[str, str] | None = None,
    distinct: bool = False,
    workdir: Path,
) -> Result:
    """Drive ``url`` with wrk (2 threads); requests, non-2xx/socket errors, p50 and p99.
    ``distinct``: every request a new query string (a GET's uncached path)."""
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency"]
    cmd += ["--timeout", "30s"]  # wrk counts answers slower than its 2 s default as errors
    if distinct:
        script = workdir / f"{name}.lua"
        script.write_text(_WRK_DISTINCT)
        cmd += ["-s", str(script)]
    elif method != "GET" or headers:
        auth = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in (headers or {}).items())
        script = workdir / f"{name}.lua"
        script.write_text(_WRK_LUA.format(method=method, body=json.dumps(body or ""), auth=auth))
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    pattern = r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$"
    lat = {q: _ms(v, u) for q, v, u in re.findall(pattern, out, re.M)}
    total = re.search(r"(\d+) requests in ([\d.]+)(s|m)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if total is None or "50" not in lat:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    seconds = float(total.group(2)) * (60 if total.group(3) == "m" else 1)
    errors = int(non2xx.group(1)) if non2xx else 0
    errors += sum(int(g) for g in sock.groups()) if sock else 0
    return Result(name, int(total.group(1)), errors, seconds, lat["50"], lat["99"])


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


def _serve(app: str, port: int, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
         "--no-access-log", "--log-level", "warning"],
        env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _load(
    use_wrk: bool, base: str, path: str, name: str, args: argparse.Namespace, work: Path, **kw: Any
) -> Result:
    """One scenario: wrk when there is one, else the httpx loop."""
    if use_wrk:
        return wrk(
            base + path,
            name=name,
            connections=args.concurrency,
            duration=kw.pop("duration", args.duration),
            workdir=work,
            **kw,
        )
    method, body, headers = kw.get("method", "GET"), kw.get("body"), kw.get("headers")
    count = iter(range(1 << 62))

    def make(c: httpx.AsyncClient) -> Any:
        url = f"{path}&miss={next(count)}" if kw.get("distinct") else path
        return c.request(method, url, content=body, headers=headers)

    return asyncio.run(
        drive(
            base,
            make,
            name=name,
            concurrency=args.concurrency,
            duration=kw.get("duration", args.duration),
            max_requests=args.max_requests,
        )
    )


def main() -> None:  # noqa: C901 - a script
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model-uri", help="registered model URI (default: train one)")
    ap.add_argument("--tracking-uri", help="MLflow tracking URI of that model")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    ap.add_argument("--max-requests", type=int, default=20_000, help="budget (httpx loop only)")
    ap.add_argument("--concurrency", type=int, default=32, help="connections")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds after ready, before load")
    ap.add_argument("--during-reload", action="store_true", help="also measure while reloading")
    ap.add_argument("--reload-window", type=float, default=60.0, help="seconds measured")
    args = ap.parse_args()
    use_wrk = shutil.which("wrk") is not None
    if not use_wrk:
        print("wrk not found (apt-get install wrk): an httpx loop drives the load instead")

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
    sp, mp, hp = free_port(), free_port(), free_port()
    py = sys.executable
    subprocess.run(  # the store's schema is an explicit step: `spendcast db upgrade`
        [str(Path(py).parent / "spendcast"), "db", "upgrade"], env=env, cwd=ROOT, check=True
    )
    (work / "hello_app.py").write_text(HELLO_APP)
    hello_srv = _serve("hello_app:app", hp, env, work)
    mlflow_bin = str(Path(py).parent / "mlflow")
    mlflow_srv = subprocess.Popen(
        [mlflow_bin, "models", "serve", "-m", uri, "--env-manager", "local", "-h", "127.0.0.1",
         "-p", str(mp), "-w", "1"],
        env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    service: subprocess.Popen[bytes] | None = None
    reload_result: Result | None = None
    try:
        wait_for(f"http://127.0.0.1:{mp}/ping", 180, mlflow_srv)
        wait_for(f"http://127.0.0.1:{hp}/", 60, hello_srv)
        service = _serve("service.main:app", sp, env, ROOT)  # alone: its cold start is timed
        ready_s = wait_for(f"http://127.0.0.1:{sp}/readyz", 60, service)
        time.sleep(args.settle)
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
        fc_path = "/v1/forecast?" + str(httpx.QueryParams({"unique_id": uid, "horizon": horizon}))
        scenarios: list[tuple[str, str, str, dict[str, Any]]] = [
            ("bare-hello", f"http://127.0.0.1:{hp}", "/", {}),
            ("hello", svc, "/healthz", {}),
            ("forecast", svc, fc_path, {}),
            ("fc-uncached", svc, fc_path, {"distinct": True}),
            (
                "detect50",
                svc,
                "/v1/anomalies/detect",
                {"method": "POST", "body": json.dumps({"observations": obs}), "headers": auth},
            ),
            (
                "mlflow",
                f"http://127.0.0.1:{mp}",
                "/invocations",
                {"method": "POST", "body": json.dumps(inv)},
            ),
        ]
        results = {}
        for name, base, path, kw in scenarios:
            results[name] = _load(use_wrk, base, path, name, args, work, **kw)
        if args.during_reload:
            import threading

            reloaded: dict[str, Any] = {}

            def do_reload() -> None:
                time.sleep(1.0)
                t = time.perf_counter()
                r = httpx.post(svc + "/v1/admin/reload", headers=auth, timeout=300)
                reloaded.update(status=r.status_code, seconds=time.perf_counter() - t)

            th = threading.Thread(target=do_reload)
            th.start()
            reload_result = _load(
                use_wrk, svc, fc_path, "reload", args, work, duration=args.reload_window
            )
            th.join()
            print(f"reload: HTTP {reloaded.get('status')} in {reloaded.get('seconds', 0):.2f}s")
    finally:
        procs = [p for p in (service, mlflow_srv, hello_srv) if p is not None]
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()

    print(f"model {uri}: horizon {horizon}, {len(ids)} series")
    print(f"cold start (process start to /readyz 200): {ready_s:.2f}s (goal <= 5: "
          f"{'met' if ready_s <= 5 else 'NOT met'})")  # fmt: skip
    driver = "wrk -t2" if use_wrk else "httpx loop (one client process)"
    print(f"{driver}, {args.concurrency} connections, {args.duration:.0f}s per scenario, loopback")
    print(
        f"{'scenario':<10} {'requests':>9} {'errors':>6} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
    )
    shown = [*results.values(), *([reload_result] if reload_result else [])]
    for r in shown:
        print(
            f"{r.name:<10} {r.requests:>9} {r.errors:>6} {r.rps:>9.1f} "
            f"{r.p50_ms:>8.2f} {r.p99_ms:>8.2f}"
        )
    f, h, m, b = results["forecast"], results["hello"], results["mlflow"], results["bare-hello"]
    ratios = [
        ("forecast rps / mlflow rps", f.rps / m.rps, ">= 5", f.rps / m.rps >= 5),
        ("forecast rps / hello rps", f.rps / h.rps, ">= 0.6", f.rps / h.rps >= 0.6),
        ("forecast p99 / hello p99", f.p99_ms / h.p99_ms, "<= 1.5", f.p99_ms / h.p99_ms <= 1.5),
        ("hello rps / bare-hello rps", h.rps / b.rps, "info", True),
        ("uncached forecast / hello rps", results["fc-uncached"].rps / h.rps, "info", True),
    ]
    if reload_result is not None:
        q = reload_result.p99_ms / f.p99_ms
        ok = q <= 2 and reload_result.errors == 0
        ratios.append(("reload p99 / steady p99", q, "<= 2, no error", ok))
    for label, value, goal, ok in ratios:
        verdict = "" if goal == "info" else f"  (goal {goal}: {'met' if ok else 'NOT met'})"
        print(f"{label:<28} {value:7.2f}{verdict}")


if __name__ == "__main__":
    main()
