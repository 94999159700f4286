"""The panel contract: column names, dtypes, metadata, validation and the domain errors.

A *panel* is a long polars frame, one row per series and month. A *bottom-level* panel
(what ``spendcast ingest`` writes) has ``ds``, ``y`` and one Utf8 column per hierarchy
level, top to bottom (any name but ``ds``, ``y`` and ``count``: a level may be called
``unique_id``), and optionally ``count`` (Int64: the acts, or rows, behind each amount; see
:mod:`forecasting.data.privacy`); the level names, the measure, the basis, the source and the
privacy facts are kept in the parquet file's key-value metadata. Training aggregates it to
every level, where series are named by ``unique_id`` (levels joined with ``/`` below the
root ``total``).

Metadata keys: ``spendcast.hierarchy`` (levels, comma-separated), ``.measure`` (what ``y``
is: ``reimbursed``, ``presented``, ``acts`` or a tidy file's value column), ``.basis``,
``.source``, ``.flat`` (``true``: the series are unrelated, their total means nothing),
``.count`` (what ``count`` counts), ``.min_cell`` (the small-cell threshold applied; ``0``:
none) and ``.min_counts`` (JSON: series id at every level -> its smallest monthly count).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from forecasting.errors import InputError

__all__ = [
    "ID_COL",
    "TIME_COL",
    "TARGET_COL",
    "ROOT_ID",
    "SEP",
    "META_HIERARCHY",
    "META_MEASURE",
    "META_BASIS",
    "META_SOURCE",
    "META_TRIANGLE",
    "META_FLAT",
    "META_COUNT",
    "META_MIN_CELL",
    "META_MIN_COUNTS",
    "COUNT_COL",
    "RESERVED_LEVELS",
    "PROCESSING_COL",
    "triangle_path",
    "PanelError",
    "PanelMeta",
    "validate_panel",
    "write_panel",
    "read_panel",
    "atomic_path",
    "panel_gaps",
]

ID_COL = "unique_id"
TIME_COL = "ds"
TARGET_COL = "y"
ROOT_ID = "total"
SEP = "/"

META_HIERARCHY = "spendcast.hierarchy"
META_MEASURE = "spendcast.measure"
META_BASIS = "spendcast.basis"
META_SOURCE = "spendcast.source"
META_TRIANGLE = "spendcast.triangle"
"""Panel metadata key: absolute path of the care x processing triangle written beside it."""
PROCESSING_COL = "processing_ds"
COUNT_COL = "count"
"""Optional panel column: the acts (or rows) behind each amount (Int64)."""
RESERVED_LEVELS = (TIME_COL, TARGET_COL, COUNT_COL)
"""Names a hierarchy level cannot take (the panel's own columns)."""
META_FLAT = "spendcast.flat"
META_COUNT = "spendcast.count"
META_MIN_CELL = "spendcast.min_cell"
META_MIN_COUNTS = "spendcast.min_counts"


def triangle_path(panel_path: Path) -> Path:
    """``PANEL.triangle.parquet`` beside a panel (the name convention; see META_TRIANGLE)."""
    panel_path = Path(panel_path)
    return panel_path.with_name(panel_path.stem + ".triangle.parquet")


class PanelError(InputError):
    """A frame or file that breaks the panel contract."""


@dataclass(frozen=True)
class PanelMeta:
    """What a bottom-level panel file says about itself (parquet key-value metadata).

    Attributes:
        hierarchy: the level columns, top to bottom.
        measure: what ``y`` is (``reimbursed``, ``presented``, ``acts``, or the value column's
            name for a tidy file).
        basis: ``flux`` or ``care``.
        source: where the data came from.
        flat: the series are unrelated (one level, values of different units): training does
            not reconcile and the total is not a series (``spendcast.flat``).
        count: what the ``count`` column counts (None: the panel has none).
        min_cell: the small-cell threshold the panel was pooled to (0: none applied).
        min_counts: series id (every level) -> its smallest monthly count.
        extra: any other ``spendcast.*`` key.
    """

    hierarchy: tuple[str, ...]
    measure: str = "reimbursed"
    basis: str = "flux"
    source: str = "unknown"
    extra: dict[str, str] = field(default_factory=dict)
    flat: bool = False
    count: str | None = None
    min_cell: int = 0
    min_counts: dict[str, int] = field(default_factory=dict)

    def to_kv(self) -> dict[str, str]:
        kv = {
            META_HIERARCHY: ",".join(self.hierarchy),
            META_MEASURE: self.measure,
            META_BASIS: self.basis,
            META_SOURCE: self.source,
            **self.extra,
        }
        if self.flat:
            kv[META_FLAT] = "true"
        if self.count is not None:
            kv[META_COUNT] = self.count
            kv[META_MIN_CELL] = str(self.min_cell)
            kv[META_MIN_COUNTS] = json.dumps(self.min_counts, sort_keys=True)
        return kv

    @classmethod
    def from_kv(cls, kv: dict[str, str], *, file: str | None = None) -> PanelMeta:
        if META_HIERARCHY not in kv or not kv[META_HIERARCHY]:
            raise PanelError(
                f"no '{META_HIERARCHY}' in the parquet metadata",
                file=file,
                hint="write the panel with `spendcast ingest` or "
                "forecasting.data.panel.write_panel",
            )
        known = {
            META_HIERARCHY,
            META_MEASURE,
            META_BASIS,
            META_SOURCE,
            META_FLAT,
            META_COUNT,
            META_MIN_CELL,
            META_MIN_COUNTS,
        }
        return cls(
            hierarchy=tuple(kv[META_HIERARCHY].split(",")),
            measure=kv.get(META_MEASURE, "reimbursed"),
            basis=kv.get(META_BASIS, "flux"),
            source=kv.get(META_SOURCE, "unknown"),
            extra={k: v for k, v in kv.items() if k.startswith("spendcast.") and k not in known},
            flat=kv.get(META_FLAT, "false") == "true",
            count=kv.get(META_COUNT),
            min_cell=int(kv.get(META_MIN_CELL, "0")),
            min_counts={k: int(v) for k, v in json.loads(kv.get(META_MIN_COUNTS, "{}")).items()},
        )


def panel_gaps(df: pl.DataFrame, keys: Sequence[str]) -> pl.DataFrame:
    """Months missing between each series' first and last month.

    Returns:
        One row per missing (series, month), with the key columns and ``ds``.
    """
    if df.is_empty():
        return df.select([*keys, TIME_COL]).clear()
    spans = df.group_by(keys).agg(
        pl.col(TIME_COL).min().alias("_start"), pl.col(TIME_COL).max().alias("_end")
    )
    full = spans.with_columns(
        pl.date_ranges("_start", "_end", interval="1mo").alias(TIME_COL)
    ).explode(TIME_COL)
    return full.select([*keys, TIME_COL]).join(
        df.select([*keys, TIME_COL]), on=[*keys, TIME_COL], how="anti", nulls_equal=True
    )


def validate_panel(
    df: pl.DataFrame,
    hierarchy: Sequence[str] | None = None,
    *,
    allow_gaps: bool = False,
    source: str | None = None,
) -> None:
    """Check a panel against the contract; raise :class:`PanelError` that says what to fix.

    Args:
        df: a bottom-level panel (``hierarchy`` given) or an id panel (``unique_id``).
        hierarchy: the level columns, top to bottom; ``None`` for a ``unique_id`` panel.
        allow_gaps: accept missing months inside a series.
        source: a name for the data in messages (e.g. the file path).
    """
    keys = list(hierarchy) if hierarchy is not None else [ID_COL]
    if hierarchy is not None:
        _check_level_names(keys, source)
    _check_columns(df, keys, source)
    if df.is_empty():
        raise PanelError("the panel has no rows", file=source, hint="check the input filters")
    _check_nulls(df, keys, source)
    _check_count(df, source)
    _raise_first(
        df.filter(~pl.col(TARGET_COL).is_finite() | pl.col(TARGET_COL).is_null()),
        "{n} missing or non-finite value(s) in 'y', first at {first}",
        keys,
        source=source,
        column=TARGET_COL,
        hint="every (series, month) needs a finite amount",
    )
    not_first = df.filter(pl.col(TIME_COL).dt.day() != 1)
    if not_first.height:
        raise PanelError(
            f"'ds' must be the first day of the month; {not_first.height} row(s) are not, "
            f"first {not_first[TIME_COL][0]}",
            file=source,
            column=TIME_COL,
            hint="truncate dates with pl.col('ds').dt.truncate('1mo')",
        )
    _raise_first(
        df.group_by([*keys, TIME_COL]).len().filter(pl.col("len") > 1),
        "{n} duplicated (series, month) pair(s), first {first}",
        keys,
        source=source,
        hint="aggregate duplicates (sum) before building the panel",
    )
    if not allow_gaps:
        _raise_first(
            panel_gaps(df, keys),
            "{n} missing month(s) inside series, first {first}",
            keys,
            source=source,
            column=TIME_COL,
            hint="pass --fill-missing zero to fill gaps with 0",
        )
    if hierarchy is None:  # an id panel; a level named like the id column is just a level
        _check_root(df, source)


def _check_level_names(levels: list[str], source: str | None) -> None:
    """Levels are distinct and none takes the name of a panel column (``ds``, ``y``, ``count``)."""
    for name in levels:
        if name in RESERVED_LEVELS or levels.count(name) > 1 or not name:
            raise PanelError(
                f"hierarchy level {name!r} "
                + ("is given twice" if levels.count(name) > 1 else "is a panel column's name"),
                file=source,
                column=name,
                hint=f"levels are distinct and not named {', '.join(RESERVED_LEVELS)}",
            )


def _check_columns(df: pl.DataFrame, keys: list[str], source: str | None) -> None:
    """``ds`` (Date), ``y`` (Float64) and the key columns (Utf8) are there, with their dtypes."""
    required = {TIME_COL: pl.Date, TARGET_COL: pl.Float64} | {k: pl.String for k in keys}
    for name, dtype in required.items():
        if name not in df.columns:
            raise PanelError(
                f"missing column '{name}' (have: {', '.join(df.columns) or 'none'})",
                file=source,
                column=name,
                hint="a panel needs ds (Date), y (Float64) and its key columns",
            )
        if df.schema[name] != dtype:  # (count is checked apart: it is optional)
            raise PanelError(
                f"column '{name}' is {df.schema[name]}, expected {dtype}",
                file=source,
                column=name,
                hint=f"cast it with pl.col('{name}').cast(pl.{dtype})",
            )


def _check_count(df: pl.DataFrame, source: str | None) -> None:
    """The optional ``count`` column is Int64 without nulls."""
    if COUNT_COL not in df.columns:
        return
    if df.schema[COUNT_COL] != pl.Int64 or df[COUNT_COL].null_count():
        raise PanelError(
            f"column '{COUNT_COL}' must be Int64 without nulls (is {df.schema[COUNT_COL]}, "
            f"{df[COUNT_COL].null_count()} null)",
            file=source,
            column=COUNT_COL,
            hint="the count column holds the acts (or rows) behind each amount",
        )


def _check_nulls(df: pl.DataFrame, keys: list[str], source: str | None) -> None:
    """No null month or key."""
    for name in [TIME_COL, *keys]:
        nulls = df[name].null_count()
        if nulls:
            raise PanelError(
                f"{nulls} null value(s) in '{name}'",
                file=source,
                column=name,
                hint="fill or drop them before building the panel",
            )


def _raise_first(
    bad: pl.DataFrame,
    message: str,
    keys: Sequence[str],
    *,
    source: str | None,
    hint: str,
    column: str | None = None,
) -> None:
    """Raise ``message`` (``{n}`` rows, the ``{first}`` one described) if ``bad`` has rows."""
    if bad.height:
        first = _describe_row(bad.row(0, named=True), keys)
        raise PanelError(
            message.format(n=bad.height, first=first), file=source, column=column, hint=hint
        )


def _check_root(df: pl.DataFrame, source: str | None) -> None:
    """Every ``unique_id`` starts at the root."""
    bad = df.filter((pl.col(ID_COL) != ROOT_ID) & ~pl.col(ID_COL).str.starts_with(ROOT_ID + SEP))
    if bad.height:
        raise PanelError(
            f"unique_id '{bad[ID_COL][0]}' does not start at the root '{ROOT_ID}'",
            file=source,
            column=ID_COL,
            hint=f"hierarchical ids look like '{ROOT_ID}{SEP}famille{SEP}executant'",
        )


def _describe_row(row: dict[str, object], keys: Sequence[str]) -> str:
    series = SEP.join(str(row[k]) for k in keys)
    return f"series '{series}' month {row.get(TIME_COL)}"


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_panel(df: pl.DataFrame, path: str | os.PathLike[str], meta: PanelMeta) -> None:
    """Validate and write a bottom-level panel atomically with its metadata."""
    validate_panel(df, meta.hierarchy, source=str(path))
    cols = [
        *meta.hierarchy,
        TIME_COL,
        TARGET_COL,
        *([COUNT_COL] if COUNT_COL in df.columns else []),
    ]
    ordered = df.select(cols).sort([*meta.hierarchy, TIME_COL])
    table = ordered.to_arrow()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta.to_kv()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_panel(path: str | os.PathLike[str]) -> tuple[pl.DataFrame, PanelMeta]:
    """Read a bottom-level panel and its metadata, validated."""
    path = Path(path)
    if not path.exists():
        raise PanelError("no such file", file=str(path), hint="run `spendcast ingest` first")
    try:
        kv_raw = pq.read_schema(path).metadata or {}
    except Exception as exc:  # pyarrow raises several types for a non-parquet file
        raise PanelError(
            f"not a parquet file ({exc})", file=str(path), hint="give a panel.parquet"
        ) from exc
    kv = {k.decode(): v.decode() for k, v in kv_raw.items()}
    meta = PanelMeta.from_kv(kv, file=str(path))
    df = pl.read_parquet(path)
    validate_panel(df, meta.hierarchy, source=str(path))
    return df, meta
