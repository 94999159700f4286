"""Partial aggregates of raw rows, shared by the Open DAMIR and the legacy readers.

A reader hands blocks of raw text rows to :func:`aggregate_frame`, which checks amounts and
months, sets bad rows aside (or raises), drops rows out of scope and sums the rest to
(hierarchy levels x month), with the acts behind the amounts when a count column is given
(``count``, see :mod:`forecasting.data.privacy`); :func:`combine` sums the partial aggregates
of many blocks or files, and :class:`FileStats` keeps what was read, rejected and excluded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from forecasting.data.panel import COUNT_COL, TARGET_COL, TIME_COL
from forecasting.errors import InputError

__all__ = ["N_COL", "OTHER_COL", "FileStats", "aggregate_frame", "combine"]

N_COL = "n"
"""Row count column kept in partial aggregates (for unknown-code counts)."""
OTHER_COL = "other_ds"
"""With ``other_month=True``: the other month of each row (care month on flux basis,
processing month on care basis), kept as one more key so that the processing x care
triangle can be derived from the per-file partial aggregates."""


@dataclass
class FileStats:
    """What reading one file found (merged into the ingest report)."""

    rows: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    excluded: dict[str, float] = field(default_factory=dict)
    quarantine: list[pl.DataFrame] = field(default_factory=list)

    def add(self, other: FileStats) -> None:
        """Add another file's (or block's) counts and quarantined rows to these."""
        self.rows += other.rows
        for k, v in other.rejected.items():
            self.rejected[k] = self.rejected.get(k, 0) + v
        for k2, a in other.excluded.items():
            self.excluded[k2] = self.excluded.get(k2, 0.0) + a
        self.quarantine.extend(other.quarantine)

    def to_json(self) -> dict[str, object]:
        """Rows, rejected and excluded counts (the quarantine is written apart)."""
        return {"rows": self.rows, "rejected": self.rejected, "excluded": self.excluded}


def aggregate_frame(
    df: pl.DataFrame,
    *,
    file: Path,
    first_line: int,
    value_col: str,
    month: pl.Expr,
    month_valid: pl.Expr,
    month_cols: list[str],
    in_scope: pl.Expr,
    level_exprs: list[pl.Expr],
    levels: tuple[str, ...],
    on_bad_rows: str,
    count_col: str | None = None,
) -> tuple[pl.DataFrame, FileStats]:
    """Check, filter and aggregate one block of raw text rows.

    Args:
        df: the block, all needed columns as text.
        file: the file it comes from (messages).
        first_line: 1-based line number of the block's first row.
        value_col: the amount column.
        month: Date expression (null = unknown month, excluded and reported).
        month_valid: Boolean expression, False for an impossible month.
        month_cols: the columns the month comes from (messages).
        in_scope: Boolean expression selecting the rows in scope.
        level_exprs: expressions producing the hierarchy columns.
        levels: their names.
        on_bad_rows: ``error`` or ``skip``.
        count_col: the column of acts behind each amount (summed into ``count``), if any.

    Returns:
        The partial aggregate (levels, ds, y, n [, count]) and the block's stats.
    """
    stats = FileStats(rows=df.height)
    df = df.with_columns(
        _number(df, value_col).alias("_v"),
        (_number(df, count_col) if count_col else pl.lit(0.0)).alias("_c"),
    )
    keys = [c for c in df.columns if c not in (value_col, count_col, "_v", "_c")]
    sums = [pl.col("_v").sum(), pl.col("_c").sum(), pl.len().cast(pl.Int64).alias("_n")]
    # Fast path: collapse the block on its raw codes first; map and check the few groups.
    if df["_v"].null_count() == 0 and df["_c"].null_count() == 0:
        g = df.group_by(keys).agg(sums)
        if g.select(month_valid.fill_null(False).all()).item():
            return _finish(g, stats, month, in_scope, level_exprs, levels, count_col)
    df = df.with_columns(month_valid.fill_null(False).alias("_mok")).with_row_index("_i")
    ok = pl.col("_v").is_not_null() & pl.col("_c").is_not_null() & pl.col("_mok")
    bad = df.filter(~ok)
    if bad.height:
        cols = (value_col, count_col or value_col)
        _set_aside(bad, stats, file, first_line, cols, month_cols, on_bad_rows)
        df = df.filter(ok)
    g = df.group_by(keys).agg(sums)
    return _finish(g, stats, month, in_scope, level_exprs, levels, count_col)


def _number(df: pl.DataFrame, col: str) -> pl.Expr:
    """A column as Float64 (text stripped; unreadable text -> null)."""
    if df.schema[col] == pl.String:
        return pl.col(col).str.strip_chars().cast(pl.Float64, strict=False)
    return pl.col(col).cast(pl.Float64)


def _set_aside(
    bad: pl.DataFrame,
    stats: FileStats,
    file: Path,
    first_line: int,
    value_count: tuple[str, str],
    month_cols: list[str],
    on_bad_rows: str,
) -> None:
    """Raise on the first bad row, or (``skip``) count the bad rows and quarantine them."""
    first = bad.row(0, named=True)
    line = first_line + int(first["_i"])
    value_col, count_col = value_count
    if first["_v"] is None:
        column = value_col
        message = f"non-numeric amount {first[value_col]!r}"
    elif first["_c"] is None:
        column = count_col
        message = f"non-numeric act count {first[count_col]!r}"
    else:
        column = ",".join(month_cols)
        message = "impossible month " + "/".join(str(first[c]) for c in month_cols)
    if on_bad_rows != "skip":
        raise InputError(
            message + (f" ({bad.height} bad row(s) in this block)" if bad.height > 1 else ""),
            file=file,
            line=line,
            column=column,
            hint="fix the file, or pass --on-bad-rows skip to set bad rows aside",
        )
    reasons = bad.select(
        pl.when(pl.col("_v").is_null())
        .then(pl.lit("non-numeric amount"))
        .when(pl.col("_c").is_null())
        .then(pl.lit("non-numeric act count"))
        .otherwise(pl.lit("impossible month"))
        .alias("reason"),
        (pl.col("_i") + first_line).alias("line"),
        pl.exclude("_i", "_v", "_c", "_mok").cast(pl.String),
    ).with_columns(pl.lit(str(file)).alias("file"))
    for r, n in reasons.group_by("reason").len().iter_rows():
        stats.rejected[r] = stats.rejected.get(r, 0) + n
    stats.quarantine.append(reasons)


def _finish(
    df: pl.DataFrame,
    stats: FileStats,
    month: pl.Expr,
    in_scope: pl.Expr,
    level_exprs: list[pl.Expr],
    levels: tuple[str, ...],
    count_col: str | None,
) -> tuple[pl.DataFrame, FileStats]:
    df = df.with_columns(month.alias(TIME_COL), in_scope.fill_null(False).alias("_in"))
    out_scope = df.filter(~pl.col("_in"))["_v"].sum()
    if df.filter(~pl.col("_in")).height:
        stats.excluded["out of scope"] = float(out_scope or 0.0)
    df = df.filter(pl.col("_in"))
    unknown = df.filter(pl.col(TIME_COL).is_null())
    if unknown.height:
        stats.excluded["unknown care month"] = float(unknown["_v"].sum())
    sums = [pl.col("_v").sum().alias(TARGET_COL), pl.col("_n").sum().alias(N_COL)]
    if count_col:
        sums.append(pl.col("_c").sum().round().cast(pl.Int64).alias(COUNT_COL))
    part = (
        df.filter(pl.col(TIME_COL).is_not_null())
        .with_columns(level_exprs)
        .group_by([*levels, TIME_COL])
        .agg(sums)
    )
    return part, stats


def combine(parts: list[pl.DataFrame], levels: tuple[str, ...]) -> pl.DataFrame:
    """Sum partial aggregates over (levels, ds) (other key columns are summed over).

    ``count`` is summed too when the parts have it.
    """
    schema = {
        **{lvl: pl.Date if lvl == OTHER_COL else pl.String for lvl in levels},
        TIME_COL: pl.Date,
        TARGET_COL: pl.Float64,
    }
    if not parts:
        return pl.DataFrame(schema={**schema, N_COL: pl.Int64})
    counted = all(COUNT_COL in p.columns for p in parts)
    return (
        pl.concat(parts, how="diagonal")
        .group_by([*levels, TIME_COL])
        .agg(pl.col(TARGET_COL).sum(), pl.col(N_COL).sum(), *([pl.col(COUNT_COL).sum()] * counted))
    )
