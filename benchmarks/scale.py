"""Scaling curve: training time and memory against the number of series, local and Dask;
ingest time and memory against the number of monthly files.

Usage::

    python benchmarks/scale.py                              # 50, 500, 5,000 bottom series
    python benchmarks/scale.py --sizes 50,500 --engines local,dask
    python benchmarks/scale.py --ingest-months 1,3,12 --rows 36600000   # real-size months

**Training.** Generated panels (``tests.panels.make_panel``: total -> famille -> executant,
seven years) of each size are trained with the default configuration, each run in a fresh
child process (wall time and peak RSS measured from outside, :mod:`measure`), with the local
engine and with Dask (a ``LocalCluster`` of 2 single-threaded worker processes, started by
the child; its workers' memory counts). The two engines' forecasts must be equal (1e-9). Prints
wall time, peak RSS, time per series and the exponent ``b`` of ``time ~ series ** b`` fitted on
the sizes run (``b`` near 1: linear), and what that predicts for 20,000 and 100,000 series.

**Ingest.** ``--ingest-months`` generates that many Open DAMIR months of ``--rows`` rows each
(:mod:`forecasting.data.synth`) and ingests the first 1, 3, ... of them, each in a fresh
process: time should grow linearly and memory stay flat (files are streamed one at a time).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import run_measured  # noqa: E402

SHAPES = {50: (5, 10), 500: (20, 25), 5000: (50, 100), 20000: (100, 200)}
"""Bottom series -> (families, executants per family)."""

CHILD = """
import json, sys, time
import polars as pl
sys.path.insert(0, {root!r})
from tests.panels import make_panel
from forecasting.training.config import TrainConfig
from forecasting.training.pipeline import fit
n_fam, n_exe, engine, out = {n_fam}, {n_exe}, {engine!r}, {out!r}
panel, meta = make_panel(n_fam=n_fam, n_exe=n_exe, months=84, seed=1)
t0 = time.perf_counter()
res = fit(panel, meta, TrainConfig(), engine=engine)
wall = time.perf_counter() - t0
res.bundle.forecasts.write_parquet(out)
print("RESULT", json.dumps({{"fit": wall, "series": res.bundle.series.height,
                            "timings": res.timings}}))
"""

INGEST = """
import json, sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from forecasting.data.ingest import ingest
files = {files!r}
t0 = time.perf_counter()
rep = ingest([Path(f) for f in files], Path({out!r}), cache_dir=Path({cache!r}))
print("RESULT", json.dumps({{"wall": time.perf_counter() - t0}}))
"""


def _result(stdout: str) -> dict[str, object]:
    lines = [x for x in stdout.splitlines() if x.startswith("RESULT ")]
    if not lines:
        raise SystemExit(f"no result:\n{stdout[-2000:]}")
    out: dict[str, object] = json.loads(lines[-1][7:])
    return out


def exponent(sizes: list[int], seconds: list[float]) -> float:
    """``b`` of the least-squares line ``log t = a + b log n``."""
    if len(sizes) < 2:
        return math.nan
    b, _ = np.polyfit(np.log(sizes), np.log(seconds), 1)
    return float(b)


def train_curve(sizes: list[int], engines: list[str], work: Path) -> None:
    rows = []
    for engine in engines:
        for n in sizes:
            n_fam, n_exe = SHAPES[n]
            out = work / f"fc-{engine}-{n}.parquet"
            code = CHILD.format(
                root=str(ROOT), n_fam=n_fam, n_exe=n_exe, engine=engine, out=str(out)
            )
            t0 = time.perf_counter()
            m = run_measured([sys.executable, "-c", code])
            if m.returncode != 0:
                raise SystemExit(f"{engine} {n}: exit {m.returncode}\n{m.stderr[-3000:]}")
            r = _result(m.stdout)
            fit_s = float(r["fit"])  # type: ignore[arg-type]
            series = int(r["series"])  # type: ignore[call-overload]
            rows.append((engine, n, series, fit_s, time.perf_counter() - t0, m.peak_mb))
            print(
                f"{engine:5s} {n:6,d} bottom ({series:6,d} series): fit {fit_s:8.1f} s, "
                f"process {rows[-1][4]:8.1f} s, peak RSS {m.peak_mb:7.0f} MB, "
                f"{1000 * fit_s / series:6.1f} ms/series",
                flush=True,
            )
    print()
    print(
        f"{'engine':6s} {'bottom':>7s} {'series':>7s} {'fit s':>9s} {'ms/series':>10s} "
        f"{'peak MB':>8s}"
    )
    for engine, n, series, fit_s, _, peak in rows:
        print(
            f"{engine:6s} {n:7,d} {series:7,d} {fit_s:9.1f} {1000 * fit_s / series:10.1f} "
            f"{peak:8.0f}"
        )
    for engine in engines:
        mine = [(series, fit_s) for e, _, series, fit_s, _, _ in rows if e == engine]
        b = exponent([s for s, _ in mine], [t for _, t in mine])
        if mine and math.isfinite(b):
            s0, t0_ = mine[-1]
            per = [t / s for s, t in mine]
            print(
                f"{engine}: time ~ series^{b:.2f}; time per series from smallest to largest "
                f"x{per[-1] / per[0]:.2f}; predicted 20,000 series "
                f"{t0_ * (20000 / s0) ** b / 60:.0f} min, 100,000 series "
                f"{t0_ * (100000 / s0) ** b / 3600:.1f} h"
            )
    import polars as pl

    for n in sizes:  # both engines' forecasts: from this run, or one kept by an earlier --keep
        paths = [work / f"fc-{e}-{n}.parquet" for e in ("local", "dask")]
        if all(p.exists() for p in paths):
            frames = [pl.read_parquet(p).sort("unique_id", "ds") for p in paths]
            a, b_ = frames[0], frames[1]
            same = a.columns == b_.columns and a.height == b_.height
            worst = 0.0
            if same:
                for c in a.columns:
                    if a[c].dtype.is_float():
                        worst = max(worst, float((a[c] - b_[c]).abs().max() or 0.0))
            ok = same and worst <= 1e-9 * max(1.0, float(a["mean"].abs().max() or 1.0))
            print(f"{n:,d} bottom: local vs dask forecasts equal: {ok} (max diff {worst:.3g})")


def ingest_curve(months: list[int], rows: int, work: Path) -> None:
    from forecasting.data import synth

    need = max(months)
    src = work / "ingest-src"
    t0 = time.perf_counter()
    synth.generate(
        src,
        start="2023-01",
        end=f"{2023 + (need - 1) // 12}-{(need - 1) % 12 + 1:02d}",
        rows_per_month=rows,
    )
    print(f"generated {need} months of {rows:,} rows in {time.perf_counter() - t0:.0f} s")
    files = sorted(str(p) for p in src.glob("A*.csv.gz"))
    results = []
    for k in months:
        out = work / f"panel-{k}.parquet"
        code = INGEST.format(
            root=str(ROOT), files=files[:k], out=str(out), cache=str(work / f"cache-{k}")
        )
        m = run_measured([sys.executable, "-c", code])
        if m.returncode != 0:
            raise SystemExit(f"ingest {k}: exit {m.returncode}\n{m.stderr[-3000:]}")
        wall = float(_result(m.stdout)["wall"])  # type: ignore[arg-type]
        results.append((k, wall, m.peak_mb))
        print(
            f"ingest {k:3d} months: {wall:8.1f} s ({wall / k:6.1f} s/month), "
            f"peak RSS {m.peak_mb:7.0f} MB",
            flush=True,
        )
    b = exponent([k for k, _, _ in results], [w for _, w, _ in results])
    peaks = [p for _, _, p in results]
    print(f"ingest: time ~ months^{b:.2f}; peak RSS from {peaks[0]:.0f} to {peaks[-1]:.0f} MB")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="50,500,5000", help=f"bottom series, from {sorted(SHAPES)}")
    ap.add_argument("--engines", default="local,dask")
    ap.add_argument("--ingest-months", default="", help="e.g. 1,3,12 (empty: skip ingest)")
    ap.add_argument("--rows", type=int, default=36_600_000, help="rows per generated month")
    ap.add_argument("--keep", type=Path, default=None, help="work in DIR and keep it")
    ns = ap.parse_args(argv)
    work = ns.keep or Path(tempfile.mkdtemp(prefix="spendcast-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        sizes = [int(x) for x in ns.sizes.split(",") if x]
        unknown = [n for n in sizes if n not in SHAPES]
        if unknown:
            raise SystemExit(f"--sizes: {unknown} not in {sorted(SHAPES)}")
        if sizes:
            train_curve(sizes, [e for e in ns.engines.split(",") if e], work)
        if ns.ingest_months:
            ingest_curve([int(x) for x in ns.ingest_months.split(",")], ns.rows, work)
    finally:
        if ns.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
