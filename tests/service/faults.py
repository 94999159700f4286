"""A bounded mixed load on a running service while its PostgreSQL stops and restarts, and the
figures that say whether the service stayed correct (shared by ``test_faults.py`` and
``benchmarks/faults.py``).

Load: ``workers`` threads, each looping until the end of the scenario or the request budget:
detect posts of 1-3 observations drawn from a small pool (so duplicates and revisions,
A -> B -> A included, are frequent), forecasts, and listings of stored results. The
scenario stops the database, starts it again, and attempts one reload of a broken champion.

Figures: observations acknowledged (answered with a revision) but not stored (lost), stored
revisions equal to the one before (duplicated), answers other than 2xx / 4xx / 503 and
transport errors (bad), seconds from the database's return to the first detect answered
200 that was sent after it (recovery, per outage), and the p99 latency of the requests that
neither started nor ended during an outage.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

from service.store import Store

if TYPE_CHECKING:
    from tests.service.pg_instance import Postgres

__all__ = ["Event", "Figures", "FaultLoad", "figures", "stored_problems", "fault_run"]


@dataclass
class Event:
    """One thing the scenario did, when (``time.monotonic()``)."""

    what: str
    at: float


@dataclass
class Figures:
    """What a fault run measured."""

    requests: int
    by_status: dict[str, int]
    acknowledged: int
    lost: int
    duplicated: int
    not_dense: int
    bad: int
    recovery_s: list[float]
    p99_ms_outside: float
    p50_ms_outside: float
    reload_status: int | None
    model_kept: bool

    def lines(self) -> list[str]:
        """The figures, one per line."""
        return [
            f"requests           {self.requests} {dict(sorted(self.by_status.items()))}",
            f"acknowledged obs   {self.acknowledged}",
            f"lost               {self.lost}",
            f"duplicated         {self.duplicated}",
            f"revision gaps      {self.not_dense}",
            f"bad answers        {self.bad} (other than 2xx/4xx/503, or no answer)",
            "recovery (s)       " + ", ".join(f"{r:.2f}" for r in self.recovery_s),
            f"p50 / p99 outside  {self.p50_ms_outside:.1f} / {self.p99_ms_outside:.1f} ms",
            f"broken reload      {self.reload_status} (old model kept: {self.model_kept})",
        ]


@dataclass
class _Record:
    op: str
    start: float
    end: float
    status: int  # 0: no answer (transport error)


@dataclass
class FaultLoad:
    """The load: start it, run the scenario, stop it, then compute :func:`figures`.

    Args:
        base: the service's base URL.
        headers: the write key header.
        ids: series to post and read.
        months: months (ISO) to post, inside the model's horizon.
        workers: concurrent clients.
        budget: most requests in all.
    """

    base: str
    headers: dict[str, str]
    ids: list[str]
    months: list[str]
    workers: int = 32
    budget: int = 200_000
    records: list[_Record] = field(default_factory=list)
    acknowledged: set[tuple[str, str, int, float]] = field(default_factory=set)
    events: list[Event] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        for i in range(self.workers):
            t = threading.Thread(target=self._work, args=(i,), daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)

    def mark(self, what: str, at: float | None = None) -> None:
        self.events.append(Event(what, time.monotonic() if at is None else at))

    def _work(self, seed: int) -> None:
        rng = random.Random(seed)
        values = (100.0, 200.0, 300.0)
        with httpx.Client(base_url=self.base, timeout=60) as client:
            while not self._stop.is_set() and len(self.records) < self.budget:
                kind = rng.choices(("detect", "forecast", "list"), weights=(5, 3, 2))[0]
                t0 = time.monotonic()
                try:
                    if kind == "detect":
                        obs = [
                            {"unique_id": rng.choice(self.ids), "ds": rng.choice(self.months),
                             "y": rng.choice(values)}
                            for _ in range(rng.randint(1, 3))
                        ]  # fmt: skip
                        r = client.post(
                            "/v1/anomalies/detect", json={"observations": obs}, headers=self.headers
                        )
                    elif kind == "forecast":
                        r = client.get("/v1/forecast", params={"unique_id": rng.choice(self.ids)})
                    else:
                        r = client.get("/v1/anomalies", params={"limit": 100})
                    status = r.status_code
                except httpx.TransportError:
                    status, r = 0, None
                self.records.append(_Record(kind, t0, time.monotonic(), status))
                if kind == "detect" and status == 200 and r is not None:
                    self._acknowledge(r.json())
                if status == 503:
                    time.sleep(0.05)  # as a client honouring Retry-After would, briefly

    def _acknowledge(self, body: dict[str, Any]) -> None:
        with self._lock:
            for v in body["results"]:
                if v["revision"] is not None:
                    self.acknowledged.add((v["unique_id"], v["ds"], v["revision"], v["y"]))


def stored_problems(
    rows: list[dict[str, Any]], acknowledged: set[tuple[str, str, int, float]]
) -> tuple[int, int, int]:
    """``(lost, duplicated, not_dense)`` of the stored observations against the acknowledged.

    Args:
        rows: every stored observation (``unique_id, ds, revision, y, as_of``).
        acknowledged: ``(unique_id, ds ISO, revision, y)`` answered to a client.
    """
    stored = {
        (r["unique_id"], r["ds"].isoformat(), int(r["revision"]), float(r["y"])) for r in rows
    }
    lost = len(acknowledged - stored)
    by_pair: dict[tuple[str, str], dict[int, tuple[float, Any]]] = defaultdict(dict)
    for r in rows:
        by_pair[(r["unique_id"], r["ds"].isoformat())][int(r["revision"])] = (r["y"], r["as_of"])
    duplicated = not_dense = 0
    for revs in by_pair.values():
        not_dense += sorted(revs) != list(range(1, len(revs) + 1))
        duplicated += sum(revs.get(k) == revs.get(k + 1) for k in range(1, len(revs)))
    duplicated += len(rows) - len(stored)
    return lost, duplicated, not_dense


def _outages(events: list[Event]) -> list[tuple[float, float]]:
    downs = [e.at for e in events if e.what == "db-down"]
    ups = [e.at for e in events if e.what == "db-up"]
    return list(zip(downs, ups, strict=True))


def figures(
    load: FaultLoad,
    rows: list[dict[str, Any]],
    *,
    reload_status: int | None,
    model_kept: bool,
) -> Figures:
    """The figures of a finished run (``rows``: the stored observations, read afterwards)."""
    recs = load.records
    by_status: dict[str, int] = defaultdict(int)
    for r in recs:
        by_status[str(r.status)] += 1
    bad = sum(
        1 for r in recs if not (200 <= r.status < 300 or 400 <= r.status < 500 or r.status == 503)
    )
    recovery = []
    windows = []
    for down, up in _outages(load.events):
        ok = [r.end for r in recs if r.op == "detect" and r.status == 200 and r.start >= up]
        back = min(ok) if ok else float("inf")
        recovery.append(back - up)
        windows.append((down, back))
    outside = [
        (r.end - r.start) * 1000
        for r in recs
        if all(r.end < lo or r.start > hi for lo, hi in windows)
    ]
    lost, duplicated, not_dense = stored_problems(rows, load.acknowledged)
    p50, p99 = np.percentile(outside, [50, 99]) if outside else (float("nan"),) * 2
    return Figures(
        requests=len(recs),
        by_status=dict(by_status),
        acknowledged=len(load.acknowledged),
        lost=lost,
        duplicated=duplicated,
        not_dense=not_dense,
        bad=bad,
        recovery_s=recovery,
        p99_ms_outside=float(p99),
        p50_ms_outside=float(p50),
        reload_status=reload_status,
        model_kept=model_kept,
    )


def run_scenario(
    load: FaultLoad,
    steps: list[tuple[float, str]],
    actions: dict[str, Callable[[], Any]],
) -> dict[str, Any]:
    """Run ``steps`` (``(seconds after the start, action name)``) with the load running.

    ``db-down`` / ``db-up`` actions are marked as events (``db-up`` when the database
    accepts connections again); every action's result is kept by name.
    """
    out: dict[str, Any] = {}
    t0 = time.monotonic()
    load.start()
    try:
        for at, name in steps:
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            if name == "db-down":
                load.mark("db-down")
            out[name] = actions[name]()
            if name == "db-up":
                load.mark("db-up", at=out[name])
    finally:
        load.stop()
    return out


def fault_run(
    base: str,
    pg: Postgres,
    promote_broken: Callable[[], str],
    *,
    auth: dict[str, str],
    ids: list[str],
    months: list[str],
    steps: list[tuple[float, str]],
    workers: int = 32,
    budget: int = 200_000,
) -> Figures:
    """The whole run on a service at ``base`` whose store is ``pg`` and whose model v1 is
    served: load, ``steps`` (``db-down`` / ``db-up`` / ``broken-reload`` / ``end``), figures.

    The first outage stops PostgreSQL cleanly (``fast``), the second like a crash
    (``immediate``).
    """
    load = FaultLoad(base, auth, ids=ids, months=months, workers=workers, budget=budget)
    downs = iter(["fast", "immediate"])

    def broken_reload() -> int:
        promote_broken()
        return httpx.post(base + "/v1/admin/reload", headers=auth, timeout=60).status_code

    done = run_scenario(
        load,
        steps,
        {
            "db-down": lambda: pg.stop(next(downs)),
            "db-up": pg.start,
            "broken-reload": broken_reload,
            "end": lambda: None,
        },
    )
    served = httpx.get(base + "/v1/model", timeout=30).json()["version"]
    store = Store(pg.url)
    try:
        rows = store.all_observations()
    finally:
        store.dispose()
    return figures(load, rows, reload_status=done["broken-reload"], model_kept=served == "1")
