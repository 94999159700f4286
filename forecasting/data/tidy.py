"""Tidy tables (CSV or parquet): one row per series and month, named columns.

``--date-col`` holds the month (``YYYY-MM``, ``YYYY-MM-DD`` or ``YYYY Mon``), ``--value-col``
the amount, ``--hierarchy COL,COL`` the levels top to bottom. Duplicated (series, month)
rows are an error; missing months inside a series are an error unless filled with zeros.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from forecasting.data.checks import check_columns
from forecasting.data.panel import TARGET_COL, TIME_COL, panel_gaps
from forecasting.errors import InputError

__all__ = ["parse_month", "read_tidy", "read_table", "read_observations"]


def read_table(path: Path, *, hint: str) -> pl.DataFrame:
    """A CSV (every column as text) or parquet file; empty or unreadable files are errors."""
    if not path.exists():
        raise InputError("no such file", file=path)
    if path.stat().st_size == 0:
        raise InputError("the file is empty", file=path, line=1, hint=hint)
    try:
        if path.suffix.lower() == ".parquet":
            return pl.read_parquet(path)
        return pl.read_csv(path, infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(f"cannot read ({str(exc).splitlines()[0]})", file=path) from exc


def parse_month(col: str) -> pl.Expr:
    """Parse ``YYYY-MM``, ``YYYY-MM-DD`` or ``YYYY Mon`` text to the month's first day."""
    txt = pl.col(col).cast(pl.String).str.strip_chars()
    return pl.coalesce(
        txt.str.strptime(pl.Date, "%Y-%m-%d", strict=False),
        (txt + "-01").str.strptime(pl.Date, "%Y-%m-%d", strict=False),
        (txt + " 01").str.strptime(pl.Date, "%Y %b %d", strict=False),
    ).dt.truncate("1mo")


def read_tidy(
    path: Path,
    *,
    date_col: str | None,
    value_col: str | None,
    hierarchy: str | None,
    fill_missing: str | None = None,
) -> tuple[pl.DataFrame, tuple[str, ...], int]:
    """Read a tidy table into a bottom-level panel.

    Returns:
        (panel with levels, ds, y), the levels, and how many missing months were filled.

    Raises:
        InputError: missing options or columns, bad dates or values, duplicates, gaps.
    """
    date_col, value_col, levels = _tidy_options(path, date_col, value_col, hierarchy)
    df = read_table(path, hint="give a non-empty table")
    check_columns(
        [date_col, value_col, *levels],
        df.columns,
        file=path,
        hint="check --date-col, --value-col and --hierarchy",
    )
    out = _parse_rows(df, path, date_col, value_col, levels)
    dupes = out.filter(pl.struct([*levels, TIME_COL]).is_duplicated())
    if dupes.height:
        r, first = _first(dupes, levels)
        raise InputError(
            f"{dupes.height} rows share a (series, month); first {first}",
            file=path,
            line=int(r["_i"]) + 2,
            column=date_col,
            hint="aggregate duplicated rows (or add the level that tells them apart)",
        )
    out = out.drop("_i")
    gaps = panel_gaps(out, list(levels))
    filled = 0
    if gaps.height:
        if fill_missing != "zero":
            raise InputError(
                f"{gaps.height} missing month(s) inside series; first {_first(gaps, levels)[1]}",
                file=path,
                column=date_col,
                hint="pass --fill-missing zero to fill them with 0",
            )
        filled = gaps.height
        out = pl.concat([out, gaps.with_columns(pl.lit(0.0).alias(TARGET_COL))], how="diagonal")
    return out.select([*levels, TIME_COL, TARGET_COL]), levels, filled


def _tidy_options(
    path: Path, date_col: str | None, value_col: str | None, hierarchy: str | None
) -> tuple[str, str, tuple[str, ...]]:
    """The date and value columns and the levels; each option is required."""
    for opt, val in (
        ("--date-col", date_col),
        ("--value-col", value_col),
        ("--hierarchy", hierarchy),
    ):
        if not val:
            raise InputError(
                f"a tidy table needs {opt}",
                file=path,
                column=opt.strip("-"),
                hint="e.g. --date-col Month --value-col Cost --hierarchy A,B",
            )
    assert date_col and value_col and hierarchy
    return date_col, value_col, tuple(c.strip() for c in hierarchy.split(",") if c.strip())


def _parse_rows(
    df: pl.DataFrame, path: Path, date_col: str, value_col: str, levels: tuple[str, ...]
) -> pl.DataFrame:
    """Row index ``_i``, levels, month and amount; the first unreadable cell is an error."""
    out = df.with_row_index("_i").select(
        "_i",
        *[pl.col(c).cast(pl.String) for c in levels],
        parse_month(date_col).alias(TIME_COL),
        pl.col(value_col).cast(pl.String).cast(pl.Float64, strict=False).alias(TARGET_COL),
        pl.col(date_col).cast(pl.String).alias("_d"),
        pl.col(value_col).cast(pl.String).alias("_v"),
    )
    for col, raw, what in ((TIME_COL, "_d", date_col), (TARGET_COL, "_v", value_col)):
        bad = out.filter(pl.col(col).is_null())
        if bad.height:
            r = bad.row(0, named=True)
            raise InputError(
                f"cannot read {r[raw]!r} as a {'month' if col == TIME_COL else 'number'}"
                f" ({bad.height} row(s))",
                file=path,
                line=int(r["_i"]) + 2,
                column=what,
                hint="months look like 2024-01, 2024-01-31 or '1991 Jul'; amounts are numbers",
            )
    return out.drop("_d", "_v")


def _first(frame: pl.DataFrame, levels: tuple[str, ...]) -> tuple[dict[str, Any], str]:
    """The first row of ``frame`` and its ``series month`` for a message."""
    r = frame.row(0, named=True)
    return r, f"{'/'.join(str(r[c]) for c in levels)} {r[TIME_COL]}"


def read_observations(path: Path) -> pl.DataFrame:
    """``unique_id, ds, y`` [+ ``as_of``] from a CSV or parquet file; bad cells name line/column."""
    raw = read_table(path, hint="give unique_id,ds,y rows")
    for name in ("unique_id", "ds", "y"):
        if name not in raw.columns:
            raise InputError(
                f"missing column '{name}' (have: {', '.join(raw.columns)})",
                file=path,
                line=1,
                column=name,
                hint="observations need unique_id, ds (YYYY-MM or a date) and y",
            )
    cols = [
        pl.col("unique_id").cast(pl.String),
        parse_month("ds").alias("ds"),
        pl.col("y").cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False).alias("y"),
    ]
    if "as_of" in raw.columns:
        cols.append(parse_month("as_of").alias("as_of"))
    frame = raw.select(cols)
    header = 0 if path.suffix.lower() == ".parquet" else 1
    for name in frame.columns:
        given = raw[name].is_not_null() & (raw[name].cast(pl.String).str.strip_chars() != "")
        bad = frame[name].is_null() | (frame[name].is_nan() if name == "y" else False)
        where = (bad & (given if name == "as_of" else True)).arg_true()
        if where.len():
            i = int(where[0])
            raise InputError(
                f"bad value {raw[name][i]!r} ({where.len()} bad row(s))",
                file=path,
                line=i + 1 + header,
                column=name,
                hint="ds/as_of: YYYY-MM or YYYY-MM-DD; y: a finite number",
            )
    return frame
