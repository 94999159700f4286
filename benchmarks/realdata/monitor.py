"""Month-by-month judging of the held-out months, clean and with injected level shifts."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import polars as pl

from forecasting.data.panel import ID_COL, TARGET_COL, TIME_COL
from forecasting.monitoring.forecast import index_bundle
from forecasting.monitoring.judge import detect

from .protocol import FLAGGED, HORIZON, KINDS, MONITOR_LEVEL, NOT_JUDGED, Z_99, quiet
from .runs import OriginRun

__all__ = [
    "judge_months",
    "inject",
    "monitor",
]


def judge_months(obs: pl.DataFrame, lookup: Any) -> pl.DataFrame:
    """Each held-out month judged one step ahead: month m with months 1..m-1 as ``stored``."""
    parts = []
    for m in range(1, HORIZON + 1):
        now = obs.filter(pl.col("step") == m).select(ID_COL, TIME_COL, TARGET_COL)
        if now.is_empty():
            continue
        before = obs.filter(pl.col("step") < m).select(ID_COL, TIME_COL, TARGET_COL)
        with quiet():
            out = detect(now, lookup, level=MONITOR_LEVEL, stored=before if before.height else None)
        parts.append(
            out.select(ID_COL, "expected", "lo", "hi", "status", "level_shift_since").with_columns(
                pl.lit(m).alias("step")
            )
        )
    flagged = pl.col("status").is_in(FLAGGED)
    return pl.concat(parts).with_columns(
        flagged.alias("flagged"),
        # caught: flagged, or judged inside a level shift the policy reported and accepted
        (flagged | pl.col("level_shift_since").is_not_null()).alias("caught"),
        ~pl.col("status").is_in(NOT_JUDGED).alias("judged"),
    )


def inject(obs: pl.DataFrame, clean: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Shift a seeded third of the judged series from a month s in 2..9 to the end.

    Kinds go round robin (+4 sigma, -4 sigma, x1.5, x0.6); sigma is the series' calibrated
    one-step sigma of each shifted month on the side of the shift, from its clean judgement of
    that month: ``(hi - expected) / 2.5758`` upward, ``(expected - lo) / 2.5758`` downward
    (bounds can be asymmetric: relative to the expectation, or held at zero for a
    never-negative series). Every shifted month is then 4 of its own sigmas away: with the
    sigma of month s alone, a seasonal series whose sigma grows with its level (relative
    bounds: PBS's safety-net months) had months after s shifted by 1 or 2 of their sigmas.

    Returns:
        ``obs`` with shifted ``y`` and ``kind`` (null: clean series), ``start``, ``shifted``.
    """
    ok = clean.group_by(ID_COL).agg(
        (pl.col("judged") & pl.col("lo").is_finite() & pl.col("hi").is_finite()).all().alias("ok")
    )
    ids = sorted(ok.filter(pl.col("ok"))[ID_COL].to_list())
    rng = np.random.default_rng(seed)
    chosen = [str(u) for u in rng.permutation(np.array(ids, dtype=object))[: round(len(ids) / 3)]]
    plan = pl.DataFrame(
        {
            ID_COL: chosen,
            "kind": [KINDS[i % len(KINDS)] for i in range(len(chosen))],
            "start": rng.integers(2, 10, size=len(chosen)).tolist(),
        },
        schema={ID_COL: pl.String, "kind": pl.String, "start": pl.Int32},
    )
    sigma = clean.select(
        ID_COL,
        "step",
        ((pl.col("hi") - pl.col("expected")) / Z_99).alias("sd_up"),
        ((pl.col("expected") - pl.col("lo")) / Z_99).alias("sd_down"),
    )
    y, kind = pl.col(TARGET_COL), pl.col("kind")
    moved = (
        pl.when(kind == "+4sigma")
        .then(y + 4 * pl.col("sd_up"))
        .when(kind == "-4sigma")
        .then(y - 4 * pl.col("sd_down"))
        .when(kind == "x1.5")
        .then(y * 1.5)
        .otherwise(y * 0.6)
    )
    hit = (kind.is_not_null() & (pl.col("step") >= pl.col("start"))).fill_null(False)
    return (
        obs.join(plan, on=ID_COL, how="left")
        .join(sigma, on=[ID_COL, "step"], how="left")
        .with_columns(pl.when(hit).then(moved).otherwise(y).alias(TARGET_COL), hit.alias("shifted"))
        .drop("sd_up", "sd_down")
    )


def monitor(run: OriginRun, *, shifts: bool, seed: int) -> pl.DataFrame:
    """Clean (and shifted) month-by-month judgements of the scored series.

    Returns:
        ``panel, origin, dataset, unique_id, step, run, status, flagged, caught, judged,
        kind, shifted`` (``run``: ``clean`` or ``shifted``; ``caught``: flagged, or inside a
        reported and accepted level shift).
    """
    lookup = index_bundle(run.result.bundle)  # one lookup: conditioning fits are reused
    obs = run.test.select("dataset", ID_COL, TIME_COL, TARGET_COL, "step")
    keys = obs.select("dataset", ID_COL).unique()
    clean = judge_months(obs, lookup)
    frames = [
        clean.with_columns(
            pl.lit("clean").alias("run"),
            pl.lit(None, pl.String).alias("kind"),
            pl.lit(False).alias("shifted"),
        )
    ]
    if shifts:
        tag = zlib.crc32(f"{run.panel.name}/{run.origin}".encode())
        moved = inject(obs, clean, seed + tag)
        judged = judge_months(moved, lookup).join(
            moved.select(ID_COL, "step", "kind", "shifted"), on=[ID_COL, "step"]
        )
        frames.append(judged.with_columns(pl.lit("shifted").alias("run")))
    cols = [ID_COL, "step", "run", "status", "flagged", "caught", "judged", "kind", "shifted"]
    return (
        pl.concat([f.select(cols) for f in frames])
        .join(keys, on=ID_COL)
        .with_columns(pl.lit(run.panel.name).alias("panel"), pl.lit(run.origin).alias("origin"))
    )
