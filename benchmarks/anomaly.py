"""Month-by-month anomaly flags of spendcast against injected anomalies and two baselines.

Usage::

    python benchmarks/anomaly.py ../shared/datasets/pbs/pbs.csv --date-col Month \
        --value-col Cost --id-col Concession,Type,ATC1
    python benchmarks/anomaly.py            # generated panel (tests.panels.make_panel)

Protocol (one concept per step, all seeded with ``--seed``):

1. **Hold out** the last 12 months (``--holdout``) of every series; train spendcast on the
   rest with ``forecasting.training.fit``. Default: a FAST config (models SeasonalNaive,
   AutoETS, AutoTheta, no calendar, 3 windows, every other field at its default);
   ``--config FILE.toml`` trains with an experiment file instead (horizon forced to the
   hold-out length). The config used is printed.
2. **Unit of size** ("backtest error"): per bottom series, the RMSE of the chosen model's
   ``h=1`` backtest errors (``Bundle.backtest``, one error per window). Series whose unit is
   0 or not finite, or with fewer than ``min_history`` training months, are not evaluated.
3. **Injection** into a fraction ``--frac`` of the evaluated bottom series, one anomaly each,
   series and months drawn at random; the i-th drawn series gets kind ``i % 3`` and size
   ``i % len(sizes)`` (every pair once per 12 series with 4 sizes):

   * ``shift``: ``+-size * unit`` (random sign) from a start month in 1..9 to month 12;
   * ``spike``: ``+size * unit`` on one month in 1..12;
   * ``drop``: ``-size * unit`` on one month in 1..12 (not clipped at 0).

   **Truth**: every month of a shift from its start on is anomalous (the level really is
   different, so a monitor should keep saying so); a spike / drop is one anomalous month.
   The other series are left clean. The same truth scores every method.
4. **spendcast**: for month m = 1..12, ``forecasting.monitoring.judge.detect(month m of every
   evaluated series, lookup, level=L, stored=months 1..m-1)`` -- what the service does as
   months arrive. When ``detect`` has no ``stored`` argument, each month is judged alone
   (unconditioned) and the output says so. ``unconditioned`` (each month alone, k-step
   ahead) is shown beside it.
5. **Baselines** on the same bottom series and months:

   a. *static in-sample interval* (statsforecast's anomaly-detection tutorial): the
      tutorial's MSTL (here ``season_length=12``) fitted on all data including the
      (injected) hold-out, ``forecast(h=1, fitted=True, level=[L])``; a hold-out month is
      flagged when outside its in-sample fitted interval.
   b. *IsolationForest* (scikit-learn) on the hold-out residuals ``(observed - static
      forecast) / unit`` (the static forecast: the bundle's 12-month forecast, not
      conditioned), ``contamination = 1 - L/100``, ``random_state = seed``.

6. **Scores** at each level: precision, recall, F1 over all evaluated series-months;
   anomalies caught (share of injected anomalies with at least one flagged month) and
   shift delay (mean months from a caught shift's start to its first flag);
   recall by kind and size; false-alarm rate = share of the months of *clean* series that
   are flagged (nominal ``1 - L/100``); for spendcast at 99, also without the clean series
   flagged in half or more of their months (a real, persistent change in real data).
   Goals (issue 5), at level 99 for spendcast: false alarms within +-1 point of 1 %;
   recall >= 0.9 on shifts of size >= 4; F1 above both baselines. ``--repeats R`` draws R
   independent injections (seeds seed..seed+R-1) on the same trained model and pools the
   counts (the clean data are the same each time). Wall time and peak memory (max RSS) are
   printed.
"""

from __future__ import annotations

import argparse
import inspect
import math
import resource
import sys
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import polars as pl
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import load_panel  # noqa: E402

from forecasting.bundle import Bundle, depth  # noqa: E402
from forecasting.data.panel import ID_COL, TARGET_COL, TIME_COL, PanelMeta  # noqa: E402
from forecasting.monitoring.forecast import SeriesForecast, index_bundle  # noqa: E402
from forecasting.monitoring.judge import detect  # noqa: E402
from forecasting.training.config import TrainConfig, load_config  # noqa: E402
from forecasting.training.engines import local_jobs, make_sf  # noqa: E402
from forecasting.training.models import make_model  # noqa: E402
from forecasting.training.pipeline import fit  # noqa: E402
from tests.panels import make_panel  # noqa: E402

__all__ = ["FAST_CONFIG", "KINDS", "inject", "score", "run", "main"]

FAST_CONFIG: dict[str, Any] = {
    "models": ["SeasonalNaive", "AutoETS", "AutoTheta"],
    "calendar": False,
    "windows": 3,
}
KINDS = ("shift", "spike", "drop")
LEVELS = (95, 99)
STATIC_MODEL = "MSTL"
SHIFT_LAST_START = 9
MIN_HISTORY = 24


@dataclass
class Counts:
    """Confusion counts of one method at one level, plus recall cells by kind and size."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    clean_months: int = 0
    clean_flags: int = 0
    persistent_series: int = 0
    persistent_flags: int = 0
    persistent_months: int = 0
    events: int = 0
    events_caught: int = 0
    shift_delays: list[int] = field(default_factory=list)
    cells: dict[tuple[str, float], list[int]] = field(default_factory=dict)  # [hit, total]

    def add(self, other: Counts) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.clean_months += other.clean_months
        self.clean_flags += other.clean_flags
        self.persistent_series += other.persistent_series
        self.persistent_flags += other.persistent_flags
        self.persistent_months += other.persistent_months
        self.events += other.events
        self.events_caught += other.events_caught
        self.shift_delays += other.shift_delays
        for key, (hit, tot) in other.cells.items():
            cell = self.cells.setdefault(key, [0, 0])
            cell[0] += hit
            cell[1] += tot

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else math.nan

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else math.nan

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r > 0 else 0.0

    @property
    def false_alarm(self) -> float:
        return self.clean_flags / self.clean_months if self.clean_months else math.nan

    def recall_where(self, kind: str, min_size: float = 0.0) -> float:
        hit = sum(c[0] for (k, s), c in self.cells.items() if k == kind and s >= min_size)
        tot = sum(c[1] for (k, s), c in self.cells.items() if k == kind and s >= min_size)
        return hit / tot if tot else math.nan


# --------------------------------------------------------------------------- data
def load(args: argparse.Namespace) -> tuple[pl.DataFrame, PanelMeta, str]:
    """The bottom-level panel from a CSV (``accuracy.load_panel``) or generated."""
    if args.data:
        ids = [c for c in args.id_col.split(",") if c]
        panel, meta = load_panel(args.data, args.date_col, args.value_col, ids)
        return panel, meta, f"{Path(args.data).name} {','.join(ids) or 'single'}"
    panel, meta = make_panel(n_fam=args.n_fam, n_exe=args.n_exe, months=args.months, seed=0)
    return panel, meta, f"generated {args.n_fam}x{args.n_exe} x {args.months} months"


def backtest_units(bundle: Bundle) -> dict[str, float]:
    """Per series: RMSE of the chosen model's ``h=1`` backtest errors."""
    bt = bundle.backtest.filter(pl.col("h") == 1)
    agg = bt.group_by(ID_COL).agg(
        ((pl.col(TARGET_COL) - pl.col("yhat")) ** 2).mean().sqrt().alias("unit")
    )
    return {str(u): float(v) for u, v in agg.iter_rows() if v is not None}


def inject(
    clean: pl.DataFrame,
    units: Mapping[str, float],
    *,
    frac: float,
    sizes: list[float],
    seed: int,
) -> pl.DataFrame:
    """Inject one anomaly into a fraction of the series of a hold-out frame.

    Args:
        clean: ``unique_id, ds, y`` hold-out months (the same months for every series).
        units: size unit per series (backtest error).
        frac: share of series that get an anomaly.
        sizes: sizes in units, assigned round-robin with the kinds.
        seed: random seed (series, start months, shift signs).

    Returns:
        ``unique_id, ds, y`` (observed, injected), ``y_clean``, ``m`` (1-based hold-out
        month), ``truth`` (bool), ``kind`` and ``size`` (null for clean series).
    """
    rng = np.random.default_rng(seed)
    ids = sorted(clean[ID_COL].unique().to_list())
    n_inj = int(round(frac * len(ids)))
    chosen = [ids[i] for i in rng.permutation(len(ids))[:n_inj]]
    months = sorted(clean[TIME_COL].unique().to_list())
    horizon = len(months)
    plan: dict[str, tuple[str, float, int, float]] = {}
    for i, uid in enumerate(chosen):
        kind = KINDS[i % len(KINDS)]
        size = sizes[i % len(sizes)]
        last_start = min(SHIFT_LAST_START, horizon) if kind == "shift" else horizon
        start = int(rng.integers(1, last_start + 1))
        sign = (
            float(rng.choice([-1.0, 1.0]))
            if kind == "shift"
            else (1.0 if kind == "spike" else -1.0)
        )
        plan[uid] = (kind, size, start, sign)
    m_of = {d: i + 1 for i, d in enumerate(months)}
    rows = []
    for uid, ds, y in clean.select(ID_COL, TIME_COL, TARGET_COL).iter_rows():
        m = m_of[ds]
        kind, size, start, sign = plan.get(uid, (None, None, 0, 0.0))  # type: ignore[assignment]
        hit = kind is not None and (m >= start if kind == "shift" else m == start)
        y_obs = y + sign * size * units[uid] if hit else y
        rows.append((uid, ds, y_obs, y, m, hit, kind, size))
    return pl.DataFrame(
        rows,
        schema={
            ID_COL: pl.String,
            TIME_COL: pl.Date,
            TARGET_COL: pl.Float64,
            "y_clean": pl.Float64,
            "m": pl.Int64,
            "truth": pl.Boolean,
            "kind": pl.String,
            "size": pl.Float64,
        },
        orient="row",
    ).sort(ID_COL, TIME_COL)


# --------------------------------------------------------------------------- methods
def has_stored() -> bool:
    """True when ``detect`` takes the ``stored`` months (one-step-ahead judging)."""
    return "stored" in inspect.signature(detect).parameters


def monitor(
    observed: pl.DataFrame,
    lookup: Mapping[str, SeriesForecast],
    level: int,
    *,
    conditioned: bool,
) -> pl.DataFrame:
    """The monthly loop: ``unique_id, ds, flag, status`` for every observed row."""
    obs = observed.select(ID_COL, TIME_COL, TARGET_COL)
    months = sorted(obs[TIME_COL].unique().to_list())
    out = []
    for i, month in enumerate(months):
        now = obs.filter(pl.col(TIME_COL) == month)
        if conditioned and i:
            before = obs.filter(pl.col(TIME_COL) < month)
            res = detect(now, lookup, level=level, min_history=MIN_HISTORY, stored=before)
        else:
            res = detect(now, lookup, level=level, min_history=MIN_HISTORY)
        # a month inside an accepted level shift is reported (as part of that shift)
        flag = pl.col("is_anomaly") | pl.col("level_shift_since").is_not_null()
        out.append(res.select(ID_COL, TIME_COL, flag.alias("flag"), "status"))
    return pl.concat(out)


def static_insample(
    history: pl.DataFrame, observed: pl.DataFrame, levels: list[int]
) -> pl.DataFrame:
    """Baseline (a): flags from the in-sample fitted interval of a model fitted on all data."""
    full = pl.concat(
        [
            history.select(ID_COL, TIME_COL, TARGET_COL),
            observed.select(ID_COL, TIME_COL, TARGET_COL),
        ]
    ).sort(ID_COL, TIME_COL)
    from statsforecast.models import MSTL

    model = (
        MSTL(season_length=12, alias="MSTL") if STATIC_MODEL == "MSTL" else make_model(STATIC_MODEL)
    )
    sf = make_sf([model], local_jobs(full))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sf.forecast(h=1, df=full, level=levels, fitted=True)
        fv = pl.DataFrame(sf.forecast_fitted_values())
    fv = fv.with_columns(pl.col(ID_COL).cast(pl.String), pl.col(TIME_COL).cast(pl.Date))
    keep = observed.select(ID_COL, TIME_COL).join(fv, on=[ID_COL, TIME_COL], how="left")
    y = pl.col(TARGET_COL)
    return keep.select(
        ID_COL,
        TIME_COL,
        *[
            ((y < pl.col(f"{STATIC_MODEL}-lo-{lv}")) | (y > pl.col(f"{STATIC_MODEL}-hi-{lv}")))
            .fill_null(False)
            .alias(f"flag_{lv}")
            for lv in levels
        ],
    )


def isolation_forest(
    observed: pl.DataFrame, bundle: Bundle, units: Mapping[str, float], level: int, seed: int
) -> pl.DataFrame:
    """Baseline (b): IsolationForest on hold-out residuals against the static forecast."""
    from sklearn.ensemble import IsolationForest

    df = observed.join(
        bundle.forecasts.select(ID_COL, TIME_COL, "mean"), on=[ID_COL, TIME_COL], how="left"
    ).with_columns(
        ((pl.col(TARGET_COL) - pl.col("mean")) / pl.col(ID_COL).replace_strict(dict(units)))
        .fill_null(0.0)
        .alias("_r")
    )
    x = df["_r"].to_numpy().reshape(-1, 1)
    forest = IsolationForest(contamination=(100 - level) / 100, random_state=seed)
    flags = forest.fit_predict(x) == -1
    return df.select(ID_COL, TIME_COL).with_columns(pl.Series("flag", flags))


def score(truth: pl.DataFrame, flags: pl.DataFrame) -> Counts:
    """Counts of ``flags`` (``unique_id, ds, flag``) against ``truth`` (from :func:`inject`)."""
    df = truth.join(flags.select(ID_COL, TIME_COL, "flag"), on=[ID_COL, TIME_COL], how="left")
    df = df.with_columns(pl.col("flag").fill_null(False))
    t, f = df["truth"], df["flag"]
    clean = df.filter(pl.col("kind").is_null())
    c = Counts(
        tp=int((t & f).sum()),
        fp=int((~t & f).sum()),
        fn=int((t & ~f).sum()),
        clean_months=clean.height,
        clean_flags=int(clean["flag"].sum()),
    )
    per = clean.group_by(ID_COL).agg(pl.col("flag").sum().alias("n"), pl.len().alias("of"))
    persistent = per.filter(pl.col("n") * 2 >= pl.col("of"))
    c.persistent_series, c.persistent_flags = persistent.height, int(persistent["n"].sum())
    c.persistent_months = int(persistent["of"].sum())
    cells = (
        df.filter(pl.col("truth"))
        .group_by("kind", "size")
        .agg(pl.col("flag").sum().alias("hit"), pl.len().alias("tot"))
    )
    for kind, size, hit, tot in cells.iter_rows():
        c.cells[(str(kind), float(size))] = [int(hit), int(tot)]
    events = (
        df.filter(pl.col("truth"))
        .sort(ID_COL, TIME_COL)
        .group_by(ID_COL)
        .agg(
            pl.col("kind").first(),
            pl.col("flag").any().alias("caught"),
            pl.col("flag").arg_max().alias("delay"),
        )
    )
    c.events, c.events_caught = events.height, int(events["caught"].sum())
    shifts = events.filter((pl.col("kind") == "shift") & pl.col("caught"))
    c.shift_delays = [int(d) for d in shifts["delay"]]
    return c


# --------------------------------------------------------------------------- run
@dataclass
class Result:
    """What :func:`run` measured: counts per (method, level) pooled over repeats."""

    label: str
    config: dict[str, Any]
    mode: str
    n_series: int
    n_injected: int
    n_months: int
    counts: dict[tuple[str, int], Counts]
    units: dict[str, float]
    seconds: dict[str, float]
    peak_mb: float
    excluded: int
    sigma_ratio: float = math.nan

    def goals(self) -> list[tuple[str, str, bool]]:
        """(goal, measured, met) at level 99."""
        ours = self.counts[("spendcast", 99)]
        fa, shift = ours.false_alarm, ours.recall_where("shift", 4.0)
        base = max(self.counts[(m, 99)].f1 for m in ("static in-sample", "IsolationForest"))
        return [
            (
                "false alarms within 1 +- 1 % at level 99",
                f"{100 * fa:.2f} %",
                abs(fa - 0.01) <= 0.01,
            ),
            ("recall >= 0.9 on shifts >= 4 backtest errors", f"{shift:.3f}", shift >= 0.9),
            ("F1 above both baselines at level 99", f"{ours.f1:.3f} vs {base:.3f}", ours.f1 > base),
        ]


METHODS = ("spendcast", "unconditioned", "static in-sample", "IsolationForest")


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", nargs="?", help="tidy CSV; default: a generated panel")
    ap.add_argument("--date-col", default="ds")
    ap.add_argument("--value-col", default="y")
    ap.add_argument("--id-col", default="", help="comma-separated hierarchy columns")
    ap.add_argument("--config", default=None, help="experiment TOML (default: the FAST config)")
    ap.add_argument("--holdout", type=int, default=12)
    ap.add_argument("--frac", type=float, default=0.5, help="share of series injected")
    ap.add_argument("--sizes", default="2,3,4,6", help="anomaly sizes in backtest errors")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1, help="independent injections pooled")
    ap.add_argument("--n-fam", type=int, default=6)
    ap.add_argument("--n-exe", type=int, default=5)
    ap.add_argument("--months", type=int, default=96)
    return ap.parse_args(argv)


def run(argv: list[str] | None = None) -> Result:
    """Train, inject, monitor, score (see the module docstring). Prints nothing."""
    args = parse(argv)
    seconds: dict[str, float] = {}
    t_all = time.perf_counter()
    panel, meta, label = load(args)
    h = args.holdout
    months = panel[TIME_COL].unique().sort()
    if months.len() <= h + 2 * 12:
        raise SystemExit(f"need more than {h + 24} months, the data has {months.len()}")
    cut = months[-h - 1]
    train = panel.filter(pl.col(TIME_COL) <= cut)
    if args.config:
        cfg = load_config(args.config, horizon=h)
    else:
        cfg = TrainConfig(**{**FAST_CONFIG, "horizon": h})
    t0 = time.perf_counter()
    bundle = fit(train, meta, cfg, progress=False).bundle
    seconds["fit"] = time.perf_counter() - t0

    # evaluated bottom series: finite positive unit, enough history, full hold-out
    from forecasting.training.hierarchy import aggregate_panel

    y_all, _ = aggregate_panel(panel, meta)
    n_levels = len(meta.hierarchy)
    units_all = backtest_units(bundle)
    hist_len = dict(bundle.history.group_by(ID_COL).len().iter_rows())
    bottom = [
        u
        for u in sorted(units_all)
        if depth(u) == n_levels
        and math.isfinite(units_all[u])
        and units_all[u] > 0
        and hist_len.get(u, 0) >= MIN_HISTORY
    ]
    holdout = y_all.filter(pl.col(ID_COL).is_in(bottom) & (pl.col(TIME_COL) > cut))
    holdout = holdout.filter(pl.len().over(ID_COL) == h)
    bottom = sorted(holdout[ID_COL].unique().to_list())
    if not bottom:
        raise SystemExit(
            "no bottom series can be evaluated: none has a backtest (training too short for "
            f"{cfg.windows} windows of {cfg.horizon} months?) and {MIN_HISTORY}+ training months"
        )
    units = {u: units_all[u] for u in bottom}
    history = bundle.history.filter(pl.col(ID_COL).is_in(bottom))
    sizes = [float(s) for s in args.sizes.split(",") if s]
    conditioned = has_stored()
    mode = (
        "conditioned (detect(..., stored=months 1..m-1))"
        if conditioned
        else "UNCONDITIONED: detect has no `stored` argument yet"
    )
    lookup = index_bundle(bundle)
    z99 = NormalDist().inv_cdf(0.995)
    ratios = []
    for u in bottom:
        half = lookup.half_widths(u, 99, 0, float(lookup[u].mean[0]))
        if half is not None:
            ratios.append(half[1] / z99 / units[u])
    counts = {(m, lv): Counts() for m in METHODS for lv in LEVELS}
    excluded: set[str] = set()
    n_injected = 0
    for rep in range(args.repeats):
        seed = args.seed + rep
        obs = inject(holdout, units, frac=args.frac, sizes=sizes, seed=seed)
        n_injected += obs.filter(pl.col("kind").is_not_null())[ID_COL].n_unique()
        flags: dict[tuple[str, int], pl.DataFrame] = {}
        t0 = time.perf_counter()
        for lv in LEVELS:
            flags[("spendcast", lv)] = monitor(obs, lookup, lv, conditioned=conditioned)
        seconds["spendcast monitoring"] = seconds.get("spendcast monitoring", 0.0) + (
            time.perf_counter() - t0
        )
        for lv in LEVELS:
            flags[("unconditioned", lv)] = monitor(obs, lookup, lv, conditioned=False)
        t0 = time.perf_counter()
        static = static_insample(history, obs, list(LEVELS))
        seconds["static baseline"] = seconds.get("static baseline", 0.0) + (
            time.perf_counter() - t0
        )
        t0 = time.perf_counter()
        for lv in LEVELS:
            flags[("static in-sample", lv)] = static.select(
                ID_COL, TIME_COL, pl.col(f"flag_{lv}").alias("flag")
            )
            flags[("IsolationForest", lv)] = isolation_forest(obs, bundle, units, lv, seed)
        seconds["IsolationForest"] = seconds.get("IsolationForest", 0.0) + (
            time.perf_counter() - t0
        )
        # series spendcast could not judge (INSUFFICIENT_DATA...) are dropped for every method
        bad = set()
        for key, fr in flags.items():
            if key[0] in ("spendcast", "unconditioned"):
                bad |= set(
                    fr.filter(~pl.col("status").is_in(["ANOMALY", "LEVEL_SHIFT", "EXPECTED"]))[
                        ID_COL
                    ].to_list()
                )
        excluded |= bad
        truth = obs.filter(~pl.col(ID_COL).is_in(sorted(bad)))
        for key, fr in flags.items():
            counts[key].add(score(truth, fr))
    seconds["total"] = time.perf_counter() - t_all
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return Result(
        label=label,
        config=cfg.model_dump(
            include={
                "models",
                "ensembles",
                "calendar",
                "windows",
                "horizon",
                "levels",
                "intervals",
                "reconciliation",
            }
        ),
        mode=mode,
        n_series=len(bottom) - len(excluded),
        n_injected=n_injected,
        n_months=h,
        counts=counts,
        units=units,
        seconds=seconds,
        peak_mb=peak,
        excluded=len(excluded),
        sigma_ratio=float(np.median(ratios)) if ratios else math.nan,
    )


def _f(x: float, digits: int = 3) -> str:
    return "-" if not math.isfinite(x) else f"{x:.{digits}f}"


def report(res: Result, sizes: list[float], console: Console | None = None) -> None:
    """Print the tables, the goals and the costs."""
    console = console or Console(width=130)
    console.print(
        f"[bold]{res.label}[/]: {res.n_series} bottom series evaluated "
        f"({res.excluded} excluded), {res.n_months} hold-out months, "
        f"{res.n_injected} injected series (pooled over repeats)"
    )
    console.print(f"config: {res.config}")
    console.print(f"spendcast mode: {res.mode}")
    u = np.array(list(res.units.values()))
    console.print(
        "unit = RMSE of h=1 backtest errors per series; median "
        f"{np.median(u):,.1f}, 10-90 %: {np.quantile(u, 0.1):,.1f} .. {np.quantile(u, 0.9):,.1f}; "
        "median over series of spendcast's one-step sigma (99 % half-width / 2.576) / unit: "
        f"{_f(res.sigma_ratio, 2)}"
    )
    main_t = Table(title="Precision / recall / F1 over series-months; false alarms on clean series")
    cols = (
        "method",
        "level",
        "precision",
        "recall",
        "F1",
        "false alarms",
        "nominal",
        "anomalies caught",
        "shift delay",
    )
    for col in cols:
        main_t.add_column(col, justify="left" if col == "method" else "right")
    for lv in LEVELS:
        for m in METHODS:
            c = res.counts[(m, lv)]
            main_t.add_row(
                m,
                str(lv),
                _f(c.precision),
                _f(c.recall),
                _f(c.f1),
                f"{_f(100 * c.false_alarm, 2)} %",
                f"{100 - lv} %",
                _f(c.events_caught / c.events if c.events else math.nan),
                _f(float(np.mean(c.shift_delays)) if c.shift_delays else math.nan, 2),
            )
    console.print(main_t)
    ours = res.counts[("spendcast", 99)]
    rest = ours.clean_months - ours.persistent_months
    if ours.clean_flags and rest:
        console.print(
            f"spendcast 99: {ours.persistent_flags} of its {ours.clean_flags} clean-series false "
            f"alarms come from {ours.persistent_series} clean series flagged in half or more of "
            "their hold-out months (a persistent change in the data itself, not noise); "
            "without them: "
            f"{_f(100 * (ours.clean_flags - ours.persistent_flags) / rest, 2)} %"
        )
    rec = Table(title="Recall by kind and size (backtest errors); n = anomalous months")
    for col in ("kind", "size", "n"):
        rec.add_column(col, justify="left" if col == "kind" else "right")
    short = {"spendcast": "ours", "unconditioned": "uncond", "static in-sample": "static"}
    pairs = [(m, lv) for m in METHODS for lv in LEVELS]
    for m, lv in pairs:
        rec.add_column(f"{short.get(m, 'IF')} {lv}", justify="right")
    ref = res.counts[("spendcast", 99)].cells
    for k in KINDS:
        for s in sizes:
            n = ref.get((k, s), [0, 0])[1]
            cells = []
            for key in pairs:
                hit, tot = res.counts[key].cells.get((k, s), [0, 0])
                cells.append(_f(hit / tot, 2) if tot else "-")
            rec.add_row(k, f"{s:g}", str(n), *cells)
    console.print(rec)
    goals = Table(title="Goals (issue 5), spendcast at level 99")
    for col in ("goal", "measured", "met"):
        goals.add_column(col)
    for goal, measured, met in res.goals():
        goals.add_row(goal, measured, "[green]met[/]" if met else "[red]not met[/]")
    console.print(goals)
    times = ", ".join(f"{k} {v:.1f} s" for k, v in res.seconds.items())
    console.print(f"wall time: {times}; peak memory (max RSS): {res.peak_mb:.0f} MB")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the tables."""
    res = run(argv)
    report(res, [float(s) for s in parse(argv).sizes.split(",") if s])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
