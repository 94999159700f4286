"""Legacy CNAM tables ``N{YYYYMM}.CSV`` / ``R{YYYYMM}.CSV``: read by header name, aggregated.

Columns are found by their lower-case names (``serie, prs_nat, ..., sns_date, rec_mon,
rem_mon, dep_mon, act_dnb``; ``R`` files add cpam, dpt, region). The flux month is the
file's month; the care month is ``sns_date`` (YYYYMM). The hierarchy is ``famille, serie``.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import polars as pl

from forecasting.data import codes
from forecasting.data.aggregate import FileStats, aggregate_frame, combine
from forecasting.data.checks import MEASURES, check_basis, check_columns, check_measure
from forecasting.errors import InputError

__all__ = ["LEVELS", "MEASURE_COLUMNS", "COUNT_COLUMN", "NAME_RE", "file_month", "aggregate_file"]

LEVELS = ("famille", "serie")
MEASURE_COLUMNS = dict(zip(MEASURES, ("rem_mon", "rec_mon", "act_dnb"), strict=True))
COUNT_COLUMN = "act_dnb"
"""The acts behind each amount (the panel's ``count``, for the small-cell rule)."""
NAME_RE = re.compile(r"^[NR](\d{4})(\d{2})\.csv$", re.IGNORECASE)


def file_month(path: Path) -> tuple[int, int]:
    """(year, month) from a legacy file name, e.g. ``N202401.CSV`` -> (2024, 1)."""
    m = NAME_RE.match(path.name)
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise InputError(
            "cannot tell the month from the file name",
            file=path,
            hint="legacy tables are named N{YYYYMM}.CSV or R{YYYYMM}.CSV",
        )
    return int(m.group(1)), int(m.group(2))


def aggregate_file(
    path: Path,
    *,
    basis: str = "flux",
    measure: str = "reimbursed",
    on_bad_rows: str = "error",
) -> tuple[pl.DataFrame, FileStats]:
    """Aggregate one legacy table to (famille, serie, ds) sums.

    Args:
        path: an ``N{YYYYMM}.CSV`` or ``R{YYYYMM}.CSV`` file.
        basis: ``flux`` (the file's month) or ``care`` (``sns_date``).
        measure: reimbursed (rem_mon), presented (rec_mon) or acts (act_dnb).
        on_bad_rows: ``error`` or ``skip``.

    Returns:
        The partial aggregate (famille, serie, ds, y, n, count) and the stats (``count``:
        the acts, ``act_dnb``).
    """
    check_measure(measure)
    year, month = file_month(path)
    df = _read(path)
    value_col = MEASURE_COLUMNS[measure]
    needed = ["serie", *dict.fromkeys([value_col, COUNT_COLUMN])]
    needed += ["sns_date"] if basis == "care" else []
    check_columns(needed, df.columns, file=path, hint="check the header names of this legacy table")
    if df.height == 0:
        raise InputError("the file has a header but no rows", file=path, line=2)
    month_expr, valid, cols = _month(basis, datetime.date(year, month, 1))
    return _aggregate(df.select(needed), path, value_col, month_expr, valid, cols, on_bad_rows)


def _read(path: Path) -> pl.DataFrame:
    """Every column as text, names stripped and lower-cased."""
    if path.stat().st_size == 0:
        raise InputError("the file is empty", file=path, line=1, hint="re-download the file")
    try:
        df = pl.read_csv(
            path, separator=";", infer_schema=False, quote_char='"', encoding="utf8-lossy"
        )
    except pl.exceptions.PolarsError as exc:
        raise InputError(
            f"cannot parse ({str(exc).splitlines()[0]})",
            file=path,
            hint="legacy tables are ';'-separated with a header line",
        ) from exc
    df.columns = [c.strip().lower() for c in df.columns]
    if len(df.columns) < 2:
        raise InputError(
            "the header is not ';'-separated",
            file=path,
            line=1,
            hint="legacy tables use ';' between columns; convert the file",
        )
    return df


def _month(basis: str, flux_month: datetime.date) -> tuple[pl.Expr, pl.Expr, list[str]]:
    """(month Date, month valid, source columns): the file's month (flux) or ``sns_date``."""
    check_basis(basis)
    if basis == "flux":
        return pl.lit(flux_month), pl.lit(True), ["serie"]
    txt = pl.col("sns_date").str.strip_chars()
    y = txt.str.slice(0, 4).cast(pl.Int32, strict=False)
    m = txt.str.slice(4, 2).cast(pl.Int32, strict=False)
    valid = (txt.str.len_chars() == 6) & (y >= 1900) & m.is_between(1, 12)
    return pl.date(y, m.clip(1, 12), 1), valid, ["sns_date"]


def _aggregate(
    df: pl.DataFrame,
    path: Path,
    value_col: str,
    month: pl.Expr,
    valid: pl.Expr,
    month_cols: list[str],
    on_bad_rows: str,
) -> tuple[pl.DataFrame, FileStats]:
    part, stats = aggregate_frame(
        df,
        file=path,
        first_line=2,
        value_col=value_col,
        month=month,
        month_valid=valid,
        month_cols=month_cols,
        in_scope=pl.lit(True),
        level_exprs=[codes.serie_famille_expr("serie"), codes.serie_slug_expr("serie")],
        levels=LEVELS,
        on_bad_rows=on_bad_rows,
        count_col=COUNT_COLUMN,
    )
    return combine([part], LEVELS), stats
