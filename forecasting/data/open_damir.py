"""Open DAMIR reader: stream one ``A{YYYYMM}.csv(.gz)`` file into per-month partial sums.

The file is never materialised: a thread decompresses it into newline-aligned byte blocks
(zlib releases the GIL), and each block is parsed by polars (only the needed columns, codes
kept as text) and aggregated at once to (hierarchy levels x month). The helpers that check
rows, set bad rows aside and aggregate a block are shared with the legacy reader.
"""

from __future__ import annotations

import gzip
import io
import queue
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

try:
    from isal import igzip as _igzip
except ImportError:  # pragma: no cover - isal is a dependency; zlib still works
    _igzip = None  # type: ignore[assignment]

from forecasting.data import codes
from forecasting.data.panel import TARGET_COL, TIME_COL
from forecasting.errors import InputError

__all__ = [
    "MEASURE_COLUMNS",
    "SCOPES",
    "FileStats",
    "read_header",
    "aggregate_frame",
    "aggregate_file",
    "hierarchy_levels",
]

MEASURE_COLUMNS = {"reimbursed": "FLT_REM_MNT", "presented": "FLT_PAI_MNT", "acts": "FLT_ACT_QTE"}
SCOPES = ("all", "monthly-statistic", "ondam")
BLOCK_BYTES = 16 * 1024 * 1024
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
        self.rows += other.rows
        for k, v in other.rejected.items():
            self.rejected[k] = self.rejected.get(k, 0) + v
        for k2, a in other.excluded.items():
            self.excluded[k2] = self.excluded.get(k2, 0.0) + a
        self.quarantine.extend(other.quarantine)

    def to_json(self) -> dict[str, object]:
        return {"rows": self.rows, "rejected": self.rejected, "excluded": self.excluded}


def hierarchy_levels(hierarchy: str | None) -> tuple[str, ...]:
    """The Open DAMIR levels for ``--hierarchy`` (None/executant or prescriber)."""
    if hierarchy in (None, "executant", "famille,executant"):
        return ("famille", "executant")
    if hierarchy in ("prescriber", "prescripteur", "famille,prescripteur"):
        return ("famille", "prescripteur")
    raise InputError(
        f"unknown Open DAMIR hierarchy {hierarchy!r}",
        column="hierarchy",
        hint="use --hierarchy executant (default) or prescriber",
    )


def _level_exprs(levels: tuple[str, ...]) -> list[pl.Expr]:
    out = [codes.famille_expr("PRS_NAT", "PSE_SPE_SNDS")]
    if levels[1] == "executant":
        out.append(codes.executant_expr("PSE_ACT_SNDS", "PSE_SPE_SNDS"))
    else:
        out.append(codes.prescripteur_expr("PSP_ACT_SNDS", "PSP_SPE_SNDS"))
    return out


def _open(path: Path) -> tuple[io.BufferedReader, object]:
    raw = path.open("rb")
    if path.name.lower().endswith(".gz"):
        if _igzip is not None:  # ISA-L inflate: several times faster than zlib
            return raw, _igzip.IGzipFile(fileobj=raw, mode="rb")
        return raw, gzip.GzipFile(fileobj=raw, mode="rb")
    return raw, raw


def read_header(path: Path) -> list[str]:
    """The column names of an Open DAMIR file (trailing empty column dropped).

    Raises:
        InputError: empty file, unreadable gzip or not ``;``-separated.
    """
    raw, stream = _open(path)
    try:
        line = stream.readline()  # type: ignore[attr-defined]
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(
            f"cannot decompress ({exc})", file=path, line=1, hint="re-download the file"
        ) from exc
    finally:
        raw.close()
    text = line.decode("utf-8", "replace").strip("\r\n")
    if not text.strip():
        raise InputError("the file is empty", file=path, line=1, hint="re-download the file")
    names = text.split(";")
    if names and names[-1] == "":
        names = names[:-1]
    if len(names) < 2:
        sep = next((s for s in (",", "\t", "|") if s in text), None)
        raise InputError(
            "the header is not ';'-separated" + (f" (it looks {sep!r}-separated)" if sep else ""),
            file=path,
            line=1,
            hint="Open DAMIR files use ';' between columns; convert the file",
        )
    return names


def _blocks(path: Path, on_bytes: Callable[[int], None] | None) -> Iterator[tuple[bytes, int]]:
    """Newline-aligned byte blocks after the header, with the 1-based line of their first row.

    Decompression runs in a thread so parsing and inflating overlap.
    """
    q: queue.Queue[tuple[bytes, int] | BaseException | None] = queue.Queue(maxsize=3)

    def produce() -> None:
        raw, stream = _open(path)
        try:
            stream.readline()  # type: ignore[attr-defined]
            line = 2
            carry = b""
            while True:
                chunk = stream.read(BLOCK_BYTES)  # type: ignore[attr-defined]
                if on_bytes is not None:
                    on_bytes(raw.tell())
                if not chunk:
                    break
                data = carry + chunk
                cut = data.rfind(b"\n")
                if cut < 0:
                    carry = data
                    continue
                block, carry = data[: cut + 1], data[cut + 1 :]
                q.put((block, line))
                line += block.count(b"\n")
            if carry.strip():
                q.put((carry + b"\n", line))
            q.put(None)
        except BaseException as exc:  # handed to the consumer
            q.put(exc)
        finally:
            raw.close()

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    while True:
        item = q.get()
        if item is None:
            break
        if isinstance(item, BaseException):
            if isinstance(item, (OSError, EOFError, zlib.error)):
                raise InputError(
                    f"the file is truncated or corrupt ({item})",
                    file=path,
                    hint="re-download the file (gzip -t FILE checks it)",
                ) from item
            raise item
        yield item
    thread.join()


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

    Returns:
        The partial aggregate (levels, ds, y, n) and the block's stats.
    """
    stats = FileStats(rows=df.height)
    if df.schema[value_col] == pl.String:
        value = pl.col(value_col).str.strip_chars().cast(pl.Float64, strict=False)
    else:
        value = pl.col(value_col).cast(pl.Float64)
    df = df.with_columns(value.alias("_v"))
    keys = [c for c in df.columns if c not in (value_col, "_v")]
    # Fast path: collapse the block on its raw codes first; map and check the few groups.
    if df["_v"].null_count() == 0:
        g = df.group_by(keys).agg(pl.col("_v").sum(), pl.len().cast(pl.Int64).alias("_n"))
        if g.select(month_valid.fill_null(False).all()).item():
            return _finish(g, stats, month, in_scope, level_exprs, levels)
    df = df.with_columns(month_valid.fill_null(False).alias("_mok")).with_row_index("_i")
    bad = df.filter(pl.col("_v").is_null() | ~pl.col("_mok"))
    if bad.height:
        first = bad.row(0, named=True)
        line = first_line + int(first["_i"])
        if first["_v"] is None:
            column = value_col
            message = f"non-numeric amount {first[value_col]!r}"
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
            .otherwise(pl.lit("impossible month"))
            .alias("reason"),
            (pl.col("_i") + first_line).alias("line"),
            pl.exclude("_i", "_v", "_mok").cast(pl.String),
        ).with_columns(pl.lit(str(file)).alias("file"))
        for r, n in reasons.group_by("reason").len().iter_rows():
            stats.rejected[r] = stats.rejected.get(r, 0) + n
        stats.quarantine.append(reasons)
        df = df.filter(pl.col("_v").is_not_null() & pl.col("_mok"))
    g = df.group_by(keys).agg(pl.col("_v").sum(), pl.len().cast(pl.Int64).alias("_n"))
    return _finish(g, stats, month, in_scope, level_exprs, levels)


def _finish(
    df: pl.DataFrame,
    stats: FileStats,
    month: pl.Expr,
    in_scope: pl.Expr,
    level_exprs: list[pl.Expr],
    levels: tuple[str, ...],
) -> tuple[pl.DataFrame, FileStats]:
    df = df.with_columns(month.alias(TIME_COL), in_scope.fill_null(False).alias("_in"))
    out_scope = df.filter(~pl.col("_in"))["_v"].sum()
    if df.filter(~pl.col("_in")).height:
        stats.excluded["out of scope"] = float(out_scope or 0.0)
    df = df.filter(pl.col("_in"))
    unknown = df.filter(pl.col(TIME_COL).is_null())
    if unknown.height:
        stats.excluded["unknown care month"] = float(unknown["_v"].sum())
    part = (
        df.filter(pl.col(TIME_COL).is_not_null())
        .with_columns(level_exprs)
        .group_by([*levels, TIME_COL])
        .agg(pl.col("_v").sum().alias(TARGET_COL), pl.col("_n").sum().alias(N_COL))
    )
    return part, stats


def _yyyymm(y: pl.Expr, m: pl.Expr) -> pl.Expr:
    return pl.date(y, m.clip(1, 12), 1)


def month_exprs(basis: str) -> tuple[pl.Expr, pl.Expr, list[str]]:
    """(month Date, month valid, source columns) for an Open DAMIR basis."""
    if basis == "flux":
        txt = pl.col("FLX_ANN_MOI").str.strip_chars()
        y = txt.str.slice(0, 4).cast(pl.Int32, strict=False)
        m = txt.str.slice(4, 2).cast(pl.Int32, strict=False)
        valid = (txt.str.len_chars() == 6) & m.is_between(1, 12) & (y >= 1900)
        return _yyyymm(y, m), valid, ["FLX_ANN_MOI"]
    if basis == "care":
        y = pl.col("SOI_ANN").str.strip_chars().cast(pl.Int32, strict=False)
        m = pl.col("SOI_MOI").str.strip_chars().cast(pl.Int32, strict=False)
        valid = ((y >= 1900) & m.is_between(1, 12)) | ((y == 0) & (m == 0))
        month = pl.when(y > 0).then(_yyyymm(y, m)).otherwise(pl.lit(None, dtype=pl.Date))
        return month, valid, ["SOI_ANN", "SOI_MOI"]
    raise InputError(f"unknown basis {basis!r}", column="basis", hint="use flux or care")


def scope_expr(scope: str) -> pl.Expr:
    """Rows in scope: all, monthly statistic (TOP_PS5_TRG=1) or ONDAM (CPT_ENV_TYP 1, 2)."""
    if scope == "all":
        return pl.lit(True)
    if scope == "monthly-statistic":
        return pl.col("TOP_PS5_TRG").str.strip_chars().cast(pl.Int32, strict=False) == 1
    if scope == "ondam":
        return pl.col("CPT_ENV_TYP").str.strip_chars().cast(pl.Int32, strict=False).is_in([1, 2])
    raise InputError(
        f"unknown scope {scope!r}", column="scope", hint="use all, monthly-statistic or ondam"
    )


def aggregate_file(
    path: Path,
    *,
    basis: str = "flux",
    measure: str = "reimbursed",
    scope: str = "all",
    hierarchy: str | None = None,
    on_bad_rows: str = "error",
    on_bytes: Callable[[int], None] | None = None,
    other_month: bool = False,
) -> tuple[pl.DataFrame, FileStats]:
    """Aggregate one Open DAMIR file to (famille, executant|prescripteur, ds) sums.

    Args:
        path: an ``A{YYYYMM}.csv`` or ``.csv.gz`` file.
        basis: ``flux`` (FLX_ANN_MOI) or ``care`` (SOI_ANN/SOI_MOI).
        measure: reimbursed, presented or acts.
        scope: all, monthly-statistic or ondam.
        hierarchy: ``executant`` (default) or ``prescriber``.
        on_bad_rows: ``error`` or ``skip``.
        on_bytes: called with the compressed bytes read so far (progress).
        other_month: also keep the other month (``OTHER_COL``: care month on flux basis,
            processing month on care basis; null when unknown or impossible).

    Returns:
        The partial aggregate (levels, [OTHER_COL,] ds, y, n) and the stats.

    Raises:
        InputError: bad file, header, or (with on_bad_rows=error) bad row.
    """
    if measure not in MEASURE_COLUMNS:
        raise InputError(
            f"unknown measure {measure!r}", column="measure", hint="use reimbursed, presented, acts"
        )
    levels = hierarchy_levels(hierarchy)
    header = read_header(path)
    value_col = MEASURE_COLUMNS[measure]
    month, month_valid, month_cols = month_exprs(basis)
    needed = {value_col, *month_cols, "PRS_NAT"}
    needed |= {"PSE_SPE_SNDS", "PSE_ACT_SNDS"} if levels[1] == "executant" else set()
    needed |= (
        {"PSE_SPE_SNDS", "PSP_SPE_SNDS", "PSP_ACT_SNDS"} if levels[1] != "executant" else set()
    )
    needed |= {"TOP_PS5_TRG"} if scope == "monthly-statistic" else set()
    needed |= {"CPT_ENV_TYP"} if scope == "ondam" else set()
    missing = sorted(needed - set(header))
    if missing:
        raise InputError(
            f"missing column(s) {', '.join(missing)} (the header has {len(header)} columns)",
            file=path,
            line=1,
            column=missing[0],
            hint="check this is an Open DAMIR file with its original header",
        )
    in_scope = scope_expr(scope)
    exprs = _level_exprs(levels)
    keys = levels
    if other_month:
        o_month, o_valid, o_cols = month_exprs("care" if basis == "flux" else "flux")
        missing_o = sorted(set(o_cols) - set(header))
        if missing_o:
            raise InputError(
                f"missing column(s) {', '.join(missing_o)}",
                file=path,
                line=1,
                column=missing_o[0],
                hint="check this is an Open DAMIR file with its original header",
            )
        needed |= set(o_cols)
        other = pl.when(o_valid.fill_null(False)).then(o_month).otherwise(None)
        exprs = [*exprs, other.alias(OTHER_COL)]
        keys = (*levels, OTHER_COL)
    schema = {f"column_{i + 1}": pl.String for i in range(len(header) + 1)}
    typed = {**schema, f"column_{header.index(value_col) + 1}": pl.Float64}
    cols = sorted(needed, key=header.index)
    idx = [header.index(c) for c in cols]
    parts: list[pl.DataFrame] = []
    total = FileStats()
    for block, first_line in _blocks(path, on_bytes):
        try:
            try:  # fast path: amounts parsed by the reader; text if a value is not a number
                df = _read_block(block, typed, idx)
            except pl.exceptions.ComputeError:
                df = _read_block(block, schema, idx)
        except pl.exceptions.PolarsError as exc:
            raise InputError(
                f"cannot parse rows ({exc})".splitlines()[0],
                file=path,
                line=first_line,
                hint="check the separator and the number of columns",
            ) from exc
        df.columns = cols
        part, stats = aggregate_frame(
            df,
            file=path,
            first_line=first_line,
            value_col=value_col,
            month=month,
            month_valid=month_valid,
            month_cols=month_cols,
            in_scope=in_scope,
            level_exprs=exprs,
            levels=keys,
            on_bad_rows=on_bad_rows,
        )
        parts.append(part)
        total.add(stats)
    if total.rows == 0:
        raise InputError(
            "the file has a header but no rows", file=path, line=2, hint="re-download the file"
        )
    return combine(parts, keys), total


def combine(parts: list[pl.DataFrame], levels: tuple[str, ...]) -> pl.DataFrame:
    """Sum partial aggregates over (levels, ds) (other key columns are summed over)."""
    schema = {
        **{lvl: pl.Date if lvl == OTHER_COL else pl.String for lvl in levels},
        TIME_COL: pl.Date,
        TARGET_COL: pl.Float64,
    }
    if not parts:
        return pl.DataFrame(schema={**schema, N_COL: pl.Int64})
    return (
        pl.concat(parts)
        .group_by([*levels, TIME_COL])
        .agg(pl.col(TARGET_COL).sum(), pl.col(N_COL).sum())
    )


def _read_block(block: bytes, schema: dict[str, Any], idx: list[int]) -> pl.DataFrame:
    return pl.read_csv(
        io.BytesIO(block),
        has_header=False,
        separator=";",
        schema=schema,
        columns=idx,
        truncate_ragged_lines=True,
        quote_char=None,
    )
