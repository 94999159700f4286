"""``spendcast detect`` in a fresh process: the fitted state stored in the bundle vs a refit.

Usage: ``python benchmarks/detect_cli.py [--series-families 10 --executants 9] [--keep DIR]``.

Trains the default config with the French calendar (AutoARIMA with working days joins the
candidates, the slowest conditioning model) on a generated panel of ~100 series, saves the
bundle twice (as trained, and without ``conditioning.json``/``.npz``: what every call paid
before training stored the fitted state), writes the 12 months after training for every
series, and runs ``spendcast detect`` once on each in a fresh process. Prints both wall times,
their ratio, the peak RSS of each (measured from outside, :mod:`measure`), and checks the two
verdict files are identical. Goal: <= 15 s for 100 series x 12 months.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import run_measured  # noqa: E402

from forecasting.fitted_state import JSON_FILE, NPZ_FILE  # noqa: E402
from forecasting.training.config import TrainConfig  # noqa: E402
from forecasting.training.hierarchy import aggregate_panel  # noqa: E402
from forecasting.training.pipeline import fit  # noqa: E402
from tests.panels import make_panel  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--series-families", type=int, default=10)
    ap.add_argument("--executants", type=int, default=9)
    ap.add_argument("--keep", type=Path, default=None, help="keep the bundles and files in DIR")
    ns = ap.parse_args(argv)
    work = ns.keep or Path(tempfile.mkdtemp(prefix="spendcast-detect-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        panel, meta = make_panel(n_fam=ns.series_families, n_exe=ns.executants, months=84)
        cut = panel["ds"].sort().unique()[-13]
        t0 = time.perf_counter()
        res = fit(panel.filter(pl.col("ds") <= cut), meta, TrainConfig(calendar="france"))
        print(
            f"trained {res.bundle.series.height} series in {time.perf_counter() - t0:.0f} s "
            f"(fitting the conditioning state: {res.timings.get('conditioning', 0):.1f} s)"
        )
        stored = res.bundle.save(work / "stored")
        bare = work / "refit"
        shutil.copytree(stored, bare, dirs_exist_ok=True)
        (bare / JSON_FILE).unlink()
        (bare / NPZ_FILE).unlink()
        full, _ = aggregate_panel(panel, meta)
        observed = full.filter(pl.col("ds") > cut).select("unique_id", "ds", "y")
        observed.write_csv(work / "observed.csv")
        print(f"observed: {observed['unique_id'].n_unique()} series x 12 months")
        runs = {}
        for name, bundle in (("stored state", stored), ("refit at load", bare)):
            out = work / f"flags-{name.split()[0]}.csv"
            cmd = [str(Path(sys.executable).parent / "spendcast"), "detect"]
            cmd += [str(work / "observed.csv"), "--model", str(bundle), "--out", str(out)]
            r = runs[name] = run_measured(cmd)
            if r.returncode not in (0, 3):
                raise SystemExit(f"{name}: exit {r.returncode}\n{r.stderr[-2000:]}")
            print(f"{name:14s} wall {r.wall:7.2f} s  peak RSS {r.peak_mb:6.0f} MB", flush=True)
        a = pl.read_csv(work / "flags-stored.csv")
        b = pl.read_csv(work / "flags-refit.csv")
        same = a.equals(b)
        ratio = runs["stored state"].wall / runs["refit at load"].wall
        print(f"ratio stored/refit {ratio:.3f}; verdicts identical: {same}")
        print(f"goal <= 15 s: {'met' if runs['stored state'].wall <= 15 else 'NOT met'}")
    finally:
        if ns.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
