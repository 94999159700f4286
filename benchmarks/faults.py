"""Fault benchmark: the service under a mixed load while its PostgreSQL stops twice.

Trains a small model and registers it (plus a broken next version), starts a throwaway
PostgreSQL server of its own (initdb in a temporary folder, a free loopback port: the
machine's cluster is never touched), runs ``spendcast db upgrade`` on it, starts the service
(``uvicorn service.main:app``, a process of its own) and drives 32 concurrent clients
(detect posts with duplicates and revisions, forecasts, listings; bounded by time and by a
request budget) for ``--duration`` seconds while:

* PostgreSQL is stopped (``fast``) for ``--outage`` seconds, then started again;
* a reload of a broken champion is attempted (must answer 503, the old model serving on);
* PostgreSQL is stopped again (``immediate``: like a crash) and started again.

Prints: requests by status, acknowledged observations, lost (must be 0), duplicated (0),
answers other than 2xx / 4xx / 503 (0), recovery after each return of the database (<= 5 s)
and p50 / p99 latency outside the outages. ``tests/service/test_faults.py`` is the short
version in ``make test``.

Usage::

    python benchmarks/faults.py                  # 70 s of load, 5 s outages
    python benchmarks/faults.py --duration 120 --outage 8
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.serve_load import build_model, wait_for  # noqa: E402
from service.store import upgrade  # noqa: E402
from tests.service.conftest import registered_with_broken_next  # noqa: E402
from tests.service.faults import fault_run  # noqa: E402
from tests.service.pg_instance import Postgres, postgres_binaries  # noqa: E402
from tests.service.server import free_port  # noqa: E402


def _steps(duration: float, outage: float) -> list[tuple[float, str]]:
    first, second = duration * 0.2, duration * 0.6
    return [
        (first, "db-down"),
        (first + outage, "db-up"),
        ((first + outage + second) / 2, "broken-reload"),
        (second, "db-down"),
        (second + outage, "db-up"),
        (duration, "end"),
    ]


def _service(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "service.main:app", "--host", "127.0.0.1",
         "--port", str(port), "--no-access-log", "--log-level", "warning"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=float, default=70.0, help="seconds of load (>= 60)")
    ap.add_argument("--outage", type=float, default=5.0, help="seconds each outage lasts")
    ap.add_argument("--workers", type=int, default=32)
    ap.add_argument("--budget", type=int, default=300_000, help="most requests in all")
    args = ap.parse_args()
    if postgres_binaries() is None:
        sys.exit("PostgreSQL server binaries (/usr/lib/postgresql/*/bin) are not installed")

    work = Path(tempfile.mkdtemp(prefix="spendcast-faults-"))
    t0 = time.perf_counter()
    uri, tracking_uri = build_model(work)  # sets MLFLOW_TRACKING_URI for this process
    promote_broken = registered_with_broken_next(uri, "spendcast-faults", work)
    print(f"trained and registered in {time.perf_counter() - t0:.1f}s")
    key = secrets.token_urlsafe(24)
    with Postgres() as pg:
        upgrade(pg.url)
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": tracking_uri,
            "SPENDCAST_MODEL_URI": "models:/spendcast-faults@champion",
            "SPENDCAST_DATABASE_URL": pg.url,
            "SPENDCAST_CACHE_DIR": str(work / "cache"),
            "SPENDCAST_API_KEYS": key,
            "SPENDCAST_LOG_LEVEL": "ERROR",
            "SPENDCAST_DB_CONNECT_TIMEOUT": "2",
        }
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = _service(env, port)
        try:
            wait_for(base + "/readyz", 120, proc)
            fc = httpx.get(base + "/v1/forecast", params={"unique_id": "total"}).json()
            ids = [s["unique_id"] for s in httpx.get(base + "/v1/series").json()["series"]][:6]
            fig = fault_run(
                base,
                pg,
                promote_broken,
                auth={"Authorization": f"Bearer {key}"},
                ids=ids,
                months=fc["ds"][:3],
                steps=_steps(args.duration, args.outage),
                workers=args.workers,
                budget=args.budget,
            )
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"load {args.duration:.0f}s, {args.workers} clients, two {args.outage:.0f}s outages")
    print("\n".join(fig.lines()))
    ok = (fig.lost, fig.duplicated, fig.not_dense, fig.bad) == (0, 0, 0, 0)
    ok = ok and max(fig.recovery_s) <= 5 and fig.reload_status == 503 and fig.model_kept
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
