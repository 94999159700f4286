"""Benchmark ``spendcast ingest`` on one synthetic Open DAMIR month against DuckDB and polars.

Usage: ``python benchmarks/ingest.py [--rows N] [--keep DIR]``. Generates one month of N rows
(default 36,600,000) with :mod:`forecasting.data.synth`, then times, each in its own
subprocess: our ingest (cache off), DuckDB ``read_csv`` + the same group-by (flux month x
PRS_NAT x executant codes, sum of FLT_REM_MNT), and a bare polars read + group-by. Prints wall
times, ratios and each side's peak RSS, measured from outside (:mod:`measure`: a child's own
``ru_maxrss`` inherits the high-water mark of the parent that generated the file).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import run_measured  # noqa: E402

__all__ = ["main"]

_PRELUDE = "import json, sys, time\nt0 = time.perf_counter()\n"
_EPILOGUE = (
    "\nprint('RESULT', json.dumps({'wall': time.perf_counter() - t0, 'total': float(total)}))"
)

OURS = """
from pathlib import Path
from forecasting.data.ingest import ingest
src, out = Path(sys.argv[1]), Path(sys.argv[2])
rep = ingest([src], out / 'panel.parquet', cache_dir=out / f'cache-{time.time_ns()}')
total = sum(rep.totals.values())
"""

DUCK = """
import duckdb
con = duckdb.connect()
con.execute("SET threads TO 2")
q = (
    "SELECT FLX_ANN_MOI, PRS_NAT, PSE_SPE_SNDS, PSE_ACT_SNDS, sum(FLT_REM_MNT) AS y "
    "FROM read_csv(?, delim=';', header=true, "
    "types={'FLT_REM_MNT': 'DOUBLE', 'PRS_NAT': 'VARCHAR', 'PSE_SPE_SNDS': 'VARCHAR', "
    "'PSE_ACT_SNDS': 'VARCHAR', 'FLX_ANN_MOI': 'VARCHAR'}) GROUP BY ALL"
)
rows = con.execute(q, [sys.argv[1]]).fetchall()
total = sum(r[-1] for r in rows)
"""

POLARS = """
import polars as pl
cols = ['FLX_ANN_MOI', 'PRS_NAT', 'PSE_SPE_SNDS', 'PSE_ACT_SNDS', 'FLT_REM_MNT']
df = pl.read_csv(sys.argv[1], separator=';', columns=cols,
                 schema_overrides={c: pl.String for c in cols[:-1]} | {'FLT_REM_MNT': pl.Float64})
agg = df.group_by(cols[:-1]).agg(pl.col('FLT_REM_MNT').sum())
total = agg['FLT_REM_MNT'].sum()
"""


def _run(code: str, *args: str) -> dict[str, float]:
    proc = run_measured([sys.executable, "-c", _PRELUDE + code + _EPILOGUE, *args])
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"exit {proc.returncode}: {proc.stdout[-1500:]} {proc.stderr[-1500:]}")
    line = lines[-1]
    result: dict[str, float] = json.loads(line[7:])
    result["rss_mb"] = proc.peak_mb
    return result


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=36_600_000)
    ap.add_argument("--keep", type=Path, default=None, help="keep/reuse the data in DIR")
    ns = ap.parse_args(argv)
    work = ns.keep or Path(tempfile.mkdtemp(prefix="spendcast-bench-"))
    src = work / "A202401.csv.gz"
    try:
        if not src.exists():
            from forecasting.data import synth

            t0 = time.perf_counter()
            synth.generate(work, start="2024-01", end="2024-01", rows_per_month=ns.rows)
            print(f"generated {ns.rows:,} rows in {time.perf_counter() - t0:.1f}s")
        print(f"file {src} ({src.stat().st_size / 1e6:,.1f} MB gz)")
        out = work / "out"
        sides = {
            "spendcast ingest": (OURS, str(src), str(out)),
            "duckdb read_csv+group-by": (DUCK, str(src)),
            "polars read_csv+group-by": (POLARS, str(src)),
        }
        results = {}
        for name, (code, *args) in sides.items():
            r = results[name] = _run(code, *args)
            print(
                f"{name:26s} wall {r['wall']:8.2f}s  peak RSS {r['rss_mb']:8.0f} MB  "
                f"total {r['total']:,.2f}",
                flush=True,
            )
        ours = results["spendcast ingest"]["wall"]
        print(f"ratio ours/duckdb {ours / results['duckdb read_csv+group-by']['wall']:.2f}")
        print(f"ratio ours/polars {ours / results['polars read_csv+group-by']['wall']:.2f}")
    finally:
        if ns.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
