"""Open DAMIR reader: stream one ``A{YYYYMM}.csv(.gz)`` file into per-month partial sums.

The file is never materialised: a thread decompresses it into newline-aligned byte blocks
(zlib releases the GIL), and each block is parsed by polars (only the needed columns, codes
kept as text) and aggregated at once to (hierarchy levels x month) by
:func:`forecasting.data.aggregate.aggregate_frame`, shared with the legacy reader.
"""

from __future__ import annotations

import functools
import gzip
import io
import queue
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl

try:
    from isal import igzip as _igzip
except ImportError:  # pragma: no cover - isal is a dependency; zlib still works
    _igzip = None  # type: ignore[assignment]

from forecasting.data import codes
from forecasting.data.aggregate import OTHER_COL, FileStats, aggregate_frame, combine
from forecasting.data.checks import (
    MEASURES,
    SCOPES,
    check_basis,
    check_choice,
    check_columns,
    check_measure,
)
from forecasting.errors import InputError

__all__ = [
    "MEASURE_COLUMNS",
    "COUNT_COLUMN",
    "read_header",
    "aggregate_file",
    "hierarchy_levels",
    "month_exprs",
    "scope_expr",
]

MEASURE_COLUMNS = dict(zip(MEASURES, ("FLT_REM_MNT", "FLT_PAI_MNT", "FLT_ACT_QTE"), strict=True))
COUNT_COLUMN = "FLT_ACT_QTE"
"""The acts behind each amount (the panel's ``count``, for the small-cell rule)."""
BLOCK_BYTES = 16 * 1024 * 1024
_HEADER_HINT = "check this is an Open DAMIR file with its original header"


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


def _yyyymm(y: pl.Expr, m: pl.Expr) -> pl.Expr:
    return pl.date(y, m.clip(1, 12), 1)


def month_exprs(basis: str) -> tuple[pl.Expr, pl.Expr, list[str]]:
    """(month Date, month valid, source columns) for an Open DAMIR basis."""
    check_basis(basis)
    if basis == "flux":
        txt = pl.col("FLX_ANN_MOI").str.strip_chars()
        y = txt.str.slice(0, 4).cast(pl.Int32, strict=False)
        m = txt.str.slice(4, 2).cast(pl.Int32, strict=False)
        valid = (txt.str.len_chars() == 6) & m.is_between(1, 12) & (y >= 1900)
        return _yyyymm(y, m), valid, ["FLX_ANN_MOI"]
    y = pl.col("SOI_ANN").str.strip_chars().cast(pl.Int32, strict=False)
    m = pl.col("SOI_MOI").str.strip_chars().cast(pl.Int32, strict=False)
    valid = ((y >= 1900) & m.is_between(1, 12)) | ((y == 0) & (m == 0))
    month = pl.when(y > 0).then(_yyyymm(y, m)).otherwise(pl.lit(None, dtype=pl.Date))
    return month, valid, ["SOI_ANN", "SOI_MOI"]


def scope_expr(scope: str) -> pl.Expr:
    """Rows in scope: all, monthly statistic (TOP_PS5_TRG=1) or ONDAM (CPT_ENV_TYP 1, 2)."""
    check_choice(scope, SCOPES, what="scope", column="scope")
    if scope == "monthly-statistic":
        return pl.col("TOP_PS5_TRG").str.strip_chars().cast(pl.Int32, strict=False) == 1
    if scope == "ondam":
        return pl.col("CPT_ENV_TYP").str.strip_chars().cast(pl.Int32, strict=False).is_in([1, 2])
    return pl.lit(True)


def _needed_columns(
    levels: tuple[str, ...], value_col: str, month_cols: list[str], scope: str
) -> set[str]:
    """The columns a file must have for these levels, measure, basis and scope."""
    needed = {value_col, COUNT_COLUMN, *month_cols, "PRS_NAT"}
    if levels[1] == "executant":
        needed |= {"PSE_SPE_SNDS", "PSE_ACT_SNDS"}
    else:
        needed |= {"PSE_SPE_SNDS", "PSP_SPE_SNDS", "PSP_ACT_SNDS"}
    needed |= {"TOP_PS5_TRG"} if scope == "monthly-statistic" else set()
    needed |= {"CPT_ENV_TYP"} if scope == "ondam" else set()
    return needed


def _other_month(basis: str, header: list[str], path: Path) -> tuple[list[str], pl.Expr]:
    """The other month's source columns and expression (:data:`OTHER_COL`, null if invalid)."""
    o_month, o_valid, o_cols = month_exprs("care" if basis == "flux" else "flux")
    check_columns(sorted(set(o_cols)), header, file=path, hint=_HEADER_HINT, detail="")
    other = pl.when(o_valid.fill_null(False)).then(o_month).otherwise(None)
    return o_cols, other.alias(OTHER_COL)


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
        The partial aggregate (levels, [OTHER_COL,] ds, y, n, count) and the stats; ``count``
        sums FLT_ACT_QTE (the acts behind the amounts).

    Raises:
        InputError: bad file, header, or (with on_bad_rows=error) bad row.
    """
    check_measure(measure)
    levels = hierarchy_levels(hierarchy)
    header = read_header(path)
    value_col = MEASURE_COLUMNS[measure]
    month, month_valid, month_cols = month_exprs(basis)
    needed = _needed_columns(levels, value_col, month_cols, scope)
    detail = f" (the header has {len(header)} columns)"
    check_columns(sorted(needed), header, file=path, hint=_HEADER_HINT, detail=detail)
    in_scope = scope_expr(scope)
    exprs, keys = _level_exprs(levels), levels
    if other_month:
        o_cols, other = _other_month(basis, header, path)
        needed |= set(o_cols)
        exprs, keys = [*exprs, other], (*levels, OTHER_COL)
    block = functools.partial(
        aggregate_frame,
        file=path,
        value_col=value_col,
        month=month,
        month_valid=month_valid,
        month_cols=month_cols,
        in_scope=in_scope,
        level_exprs=exprs,
        levels=keys,
        on_bad_rows=on_bad_rows,
        count_col=COUNT_COLUMN,
    )
    frames = _frames(path, header, sorted(needed, key=header.index), value_col, on_bytes)
    return _sum_blocks(path, frames, block, keys)


def _sum_blocks(
    path: Path,
    frames: Iterator[tuple[pl.DataFrame, int]],
    block: Callable[..., tuple[pl.DataFrame, FileStats]],
    keys: tuple[str, ...],
) -> tuple[pl.DataFrame, FileStats]:
    """Each block aggregated, then all combined; a file without rows is an error."""
    parts: list[pl.DataFrame] = []
    total = FileStats()
    for df, first_line in frames:
        part, stats = block(df, first_line=first_line)
        parts.append(part)
        total.add(stats)
    if total.rows == 0:
        raise InputError(
            "the file has a header but no rows", file=path, line=2, hint="re-download the file"
        )
    return combine(parts, keys), total


def _frames(
    path: Path,
    header: list[str],
    cols: list[str],
    value_col: str,
    on_bytes: Callable[[int], None] | None,
) -> Iterator[tuple[pl.DataFrame, int]]:
    """The needed columns of each block (amounts and acts as numbers when they all parse)."""
    schema = {f"column_{i + 1}": pl.String for i in range(len(header) + 1)}
    numbers = {f"column_{header.index(c) + 1}": pl.Float64 for c in (value_col, COUNT_COLUMN)}
    typed = {**schema, **numbers}
    idx = [header.index(c) for c in cols]
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
        yield df, first_line


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
