"""Tidy tables (CSV or parquet): one row per series and month, named columns.

``--date-col`` holds the month (``YYYY-MM``, ``YYYY-MM-DD`` or ``YYYY Mon``), ``--value-col``
the amount, ``--hierarchy COL,COL`` the levels top to bottom (any column name, ``unique_id``
included), ``--count-col`` the acts (or persons) behind each amount, if the file has them.
Duplicated (series, month) rows are an error; missing months inside a series are an error
unless filled with zeros.

The forecasting ecosystem's long format (``unique_id, ds, y``: what statsforecast, MLflow's
examples and most tools write) is recognised by its header: ``--date-col`` and
``--value-col`` default to ``ds`` and ``y`` when the file has them, and ``--hierarchy`` to
``unique_id``; such a file's series are taken as unrelated (*flat*) unless ``--hierarchy``
is given (:func:`tidy_layout`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from forecasting.data.checks import check_columns
from forecasting.data.panel import (
    COUNT_COL,
    ID_COL,
    RESERVED_LEVELS,
    SEP,
    TARGET_COL,
    TIME_COL,
    panel_gaps,
)
from forecasting.errors import InputError

__all__ = [
    "LONG_FORMAT",
    "TidyLayout",
    "tidy_layout",
    "parse_month",
    "read_tidy",
    "read_table",
    "read_observations",
]

LONG_FORMAT = (ID_COL, TIME_COL, TARGET_COL)
"""The ecosystem's long format: series id, month, value."""


@dataclass(frozen=True)
class TidyLayout:
    """How a tidy table is read.

    Attributes:
        date_col: the month column.
        value_col: the amount column.
        levels: the hierarchy columns, top to bottom.
        long_format: the header is the ecosystem's ``unique_id, ds, y`` and no
            ``--hierarchy`` was given (its series are then flat by default).
        count_col: the column of acts behind each amount (None: no counts).
    """

    date_col: str
    value_col: str
    levels: tuple[str, ...]
    long_format: bool = False
    count_col: str | None = None

    def describe(self) -> str:
        """What was recognised, for the console and the report."""
        what = "long format unique_id, ds, y" if self.long_format else "tidy table"
        count = f", counts '{self.count_col}'" if self.count_col else ", no counts"
        return (
            f"{what}: month '{self.date_col}', value '{self.value_col}', "
            f"level(s) {', '.join(self.levels)}{count}"
        )

    @property
    def measure(self) -> str:
        """What the values are, when ``--measure`` is not given: the value column's name."""
        return "value" if self.value_col == TARGET_COL else self.value_col


def tidy_layout(
    path: Path,
    columns: list[str],
    *,
    date_col: str | None,
    value_col: str | None,
    hierarchy: str | None,
    count_col: str | None = None,
) -> TidyLayout:
    """The columns to read: the options given, else the long format's ``ds``, ``y``, ``unique_id``.

    Raises:
        InputError: an option is missing and the header does not supply it, or a level takes
            the name of another role (month, value, count) or of a panel column.
    """
    defaults = {"--date-col": TIME_COL, "--value-col": TARGET_COL, "--hierarchy": ID_COL}
    given = {"--date-col": date_col, "--value-col": value_col, "--hierarchy": hierarchy}
    chosen: dict[str, str] = {}
    for opt, val in given.items():
        if val:
            chosen[opt] = val
        elif defaults[opt] in columns:
            chosen[opt] = defaults[opt]
        else:
            raise InputError(
                f"a tidy table needs {opt} (the file has no '{defaults[opt]}' column)",
                file=path,
                column=opt.strip("-"),
                hint="e.g. --date-col Month --value-col Cost --hierarchy A,B",
            )
    levels = tuple(c.strip() for c in chosen["--hierarchy"].split(",") if c.strip())
    roles = {chosen["--date-col"], chosen["--value-col"], count_col}
    for lvl in levels:
        if lvl in roles or lvl in RESERVED_LEVELS:
            raise InputError(
                f"'{lvl}' cannot be a hierarchy level: it is the "
                + ("month, value or count column" if lvl in roles else "name of a panel column"),
                file=path,
                column="hierarchy",
                hint=f"rename the column; levels cannot be named {', '.join(RESERVED_LEVELS)}",
            )
    long_format = set(LONG_FORMAT) <= set(columns) and not hierarchy
    return TidyLayout(
        chosen["--date-col"], chosen["--value-col"], levels, long_format, count_col or None
    )


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
    count_col: str | None = None,
) -> tuple[pl.DataFrame, TidyLayout, int]:
    """Read a tidy table into a bottom-level panel.

    Returns:
        (panel with levels, ds, y [, count]), the :class:`TidyLayout` read, and how many
        missing months were filled (with 0, count 0).

    Raises:
        InputError: missing options or columns, bad dates, values or counts, a ``/`` in a
            level's value, duplicates, gaps.
    """
    df = read_table(path, hint="give a non-empty table")
    layout = tidy_layout(
        path,
        df.columns,
        date_col=date_col,
        value_col=value_col,
        hierarchy=hierarchy,
        count_col=count_col,
    )
    levels = layout.levels
    check_columns(
        [layout.date_col, layout.value_col, *levels, *([count_col] if count_col else [])],
        df.columns,
        file=path,
        hint="check --date-col, --value-col, --hierarchy and --count-col",
    )
    out = _parse_rows(df, path, layout)
    _check_values(out, path, levels)
    dupes = out.filter(pl.struct([*levels, TIME_COL]).is_duplicated())
    if dupes.height:
        r, first = _first(dupes, levels)
        raise InputError(
            f"{dupes.height} rows share a (series, month); first {first}",
            file=path,
            line=int(r["_i"]) + 2,
            column=layout.date_col,
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
                column=layout.date_col,
                hint="pass --fill-missing zero to fill them with 0",
            )
        filled = gaps.height
        zero = [
            pl.lit(0.0).alias(TARGET_COL),
            *([pl.lit(0, dtype=pl.Int64).alias(COUNT_COL)] if count_col else []),
        ]
        out = pl.concat([out, gaps.with_columns(zero)], how="diagonal")
    cols = [*levels, TIME_COL, TARGET_COL, *([COUNT_COL] if count_col else [])]
    return out.select(cols), layout, filled


def _check_values(out: pl.DataFrame, path: Path, levels: tuple[str, ...]) -> None:
    """No level value holds ``/`` (it joins the levels of a series id) or is empty."""
    for lvl in levels:
        bad = out.filter(pl.col(lvl).str.contains(SEP, literal=True) | (pl.col(lvl) == ""))
        if bad.height:
            r = bad.row(0, named=True)
            raise InputError(
                f"value {r[lvl]!r} of level '{lvl}' is empty or holds '{SEP}' "
                f"({bad.height} row(s))",
                file=path,
                line=int(r["_i"]) + 2,
                column=lvl,
                hint=f"'{SEP}' joins the levels of a series id: replace it (e.g. by '-')",
            )


def _parse_rows(df: pl.DataFrame, path: Path, layout: TidyLayout) -> pl.DataFrame:
    """Row index, levels, month, amount [and count]; the first unreadable cell is an error."""
    date_col, value_col, count_col = layout.date_col, layout.value_col, layout.count_col
    numbers = [(TARGET_COL, value_col, "_v")] + (
        [(COUNT_COL, count_col, "_c")] if count_col else []
    )
    out = df.with_row_index("_i").select(
        "_i",
        *[pl.col(c).cast(pl.String) for c in layout.levels],
        parse_month(date_col).alias(TIME_COL),
        *[
            pl.col(src).cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False).alias(dst)
            for dst, src, _ in numbers
        ],
        pl.col(date_col).cast(pl.String).alias("_d"),
        *[pl.col(src).cast(pl.String).alias(raw) for _, src, raw in numbers],
    )
    checks = [(TIME_COL, "_d", date_col, "month"), *[(d, r, s, "number") for d, s, r in numbers]]
    for col, raw, what, kind in checks:
        bad = out.filter(
            pl.col(col).is_null() | (pl.col(col).is_nan() if kind == "number" else False)
        )
        if bad.height:
            r = bad.row(0, named=True)
            raise InputError(
                f"cannot read {r[raw]!r} as a {kind} ({bad.height} row(s))",
                file=path,
                line=int(r["_i"]) + 2,
                column=what,
                hint="months look like 2024-01, 2024-01-31 or '1991 Jul'; amounts are numbers",
            )
    if count_col:
        out = out.with_columns(pl.col(COUNT_COL).round().cast(pl.Int64))
    return out.drop("_d", *[raw for _, _, raw in numbers])


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
