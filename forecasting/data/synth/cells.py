"""A processing month's cells (category x care month), split into row blocks and rows.

The rows of a processing month are allocated to its cells in proportion to their amounts
(at least one row per cell), about 15 % of the rows of every cell with three rows or more
are small negative regularisations, and each cell's amounts are split over its rows in
integer cents, so that a file's sums equal the truth x lag shares exactly to the cent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from forecasting.data.synth.dims import TOP
from forecasting.data.synth.truth import MAX_LAG, UNKNOWN_CARE_SHARE, Amounts, Truth

__all__ = ["Blocks", "month_cells", "split_cells", "chunks", "chunk_rows"]

_CHUNK_ROWS = 300_000
_BLOCK_ROWS = 150_000
_WEIGHT_LEVELS = np.array([0.25, 0.5, 0.75, 1.0, 1.0, 1.5, 2.0, 2.0, 3.0, 4.0, 6.0, 10.0])
_NEGATIVE_ROW_SHARE = 0.15
_NEGATIVE_AMOUNT_SHARE = 0.02


@dataclass
class Blocks:
    """Row blocks of one processing month: contiguous rows of one cell and one sign."""

    cat: NDArray[np.int64]
    care: NDArray[np.int64]  # care month index, -1 = unknown
    rows: NDArray[np.int64]
    rem: NDArray[np.int64]
    pai: NDArray[np.int64]
    acts: NDArray[np.int64]
    negative: NDArray[np.bool_]


def month_cells(
    truth: Truth, processing: int, fmt: str
) -> tuple[NDArray[np.int64], NDArray[np.int64], Amounts]:
    """The cells of one processing month: category and care month indexes, and amounts.

    Open DAMIR adds one cell per category with an unknown care month (index -1).
    """
    n_cat = len(truth.cats)
    lags = np.arange(MAX_LAG + 1)
    care = processing - lags
    j = care - int(truth.care_months[0])
    ok = j >= 0
    care, lag, j = care[ok], lags[ok], j[ok]
    cat_idx = np.repeat(np.arange(n_cat), len(care))
    care_idx = np.tile(care, n_cat)
    amounts = truth.lags.map(lambda x: x[:, j, lag].reshape(-1))
    if fmt == "open-damir":
        ratio = UNKNOWN_CARE_SHARE / (1.0 - UNKNOWN_CARE_SHARE)
        cat_idx = np.concatenate([cat_idx, np.arange(n_cat)])
        care_idx = np.concatenate([care_idx, np.full(n_cat, -1)])
        amounts = amounts.map(
            lambda x: np.concatenate(
                [x, np.round(x.reshape(n_cat, -1).sum(axis=1) * ratio).astype(np.int64)]
            )
        )
    return cat_idx.astype(np.int64), care_idx.astype(np.int64), amounts


def _largest_remainder(total: int, weights: NDArray[np.float64]) -> NDArray[np.int64]:
    raw = total * weights / weights.sum()
    base = np.floor(raw).astype(np.int64)
    left = total - int(base.sum())
    order = np.argsort(-(raw - base), kind="stable")
    base[order[:left]] += 1
    return base


def split_cells(
    cat: NDArray[np.int64],
    care: NDArray[np.int64],
    rem: NDArray[np.int64],
    pai: NDArray[np.int64],
    acts: NDArray[np.int64],
    n_rows: int,
) -> Blocks:
    """Rows per cell (at least one, rest in proportion to amounts) cut into blocks."""
    keep = (rem != 0) | (pai != 0) | (acts != 0)
    cat, care, rem, pai, acts = cat[keep], care[keep], rem[keep], pai[keep], acts[keep]
    n_cells = len(cat)
    total_rows = max(n_rows, n_cells)
    weight = np.abs(rem).astype(float) + 1.0
    per_cell = 1 + _largest_remainder(total_rows - n_cells, weight)
    out: dict[str, list[Any]] = {k: [] for k in ("cat", "care", "rows", "rem", "pai", "acts")}
    negative: list[bool] = []
    for i in range(n_cells):
        n = int(per_cell[i])
        n_neg = int(round(_NEGATIVE_ROW_SHARE * n)) if n >= 3 else 0
        parts = [(n - n_neg, False), (n_neg, True)] if n_neg else [(n, False)]
        neg = [-round(_NEGATIVE_AMOUNT_SHARE * int(x[i])) if n_neg else 0 for x in (rem, pai, acts)]
        for size, is_neg in parts:
            amounts = (
                neg
                if is_neg
                else [int(x[i]) - v for x, v in zip((rem, pai, acts), neg, strict=True)]
            )
            n_blocks = -(-size // _BLOCK_ROWS)
            sizes = _largest_remainder(size, np.ones(n_blocks))
            split = [_largest_remainder(a, sizes.astype(float)) for a in amounts]
            for b in range(n_blocks):
                out["cat"].append(cat[i])
                out["care"].append(care[i])
                out["rows"].append(sizes[b])
                out["rem"].append(split[0][b])
                out["pai"].append(split[1][b])
                out["acts"].append(split[2][b])
                negative.append(is_neg)
    arrays = {k: np.asarray(v, dtype=np.int64) for k, v in out.items()}
    return Blocks(negative=np.asarray(negative, dtype=bool), **arrays)


def _split(
    totals: NDArray[np.int64],
    weights: NDArray[np.float64],
    block_of_row: NDArray[np.int64],
    starts: NDArray[np.int64],
) -> NDArray[np.int64]:
    """Split each block total over its rows in proportion to weights, exactly (integers)."""
    w_sum = np.add.reduceat(weights, starts)
    sign = np.sign(totals)
    mag = np.abs(totals)
    raw = mag[block_of_row] * (weights / w_sum[block_of_row]) * (1.0 - 1e-12)
    base = np.floor(raw).astype(np.int64)
    left = mag - np.add.reduceat(base, starts)
    rank = np.arange(len(weights)) - starts[block_of_row]
    base += (rank < left[block_of_row]).astype(np.int64)
    return base * sign[block_of_row]


def chunks(blocks: Blocks) -> Iterator[NDArray[np.int64]]:
    """Groups of consecutive block indices holding about ``_CHUNK_ROWS`` rows each."""
    current: list[int] = []
    rows = 0
    for b in range(len(blocks.rows)):
        current.append(b)
        rows += int(blocks.rows[b])
        if rows >= _CHUNK_ROWS:
            yield np.asarray(current, dtype=np.int64)
            current, rows = [], 0
    if current:
        yield np.asarray(current, dtype=np.int64)


def chunk_rows(
    blocks: Blocks, idx: NDArray[np.int64], rng: np.random.Generator, with_scope: bool
) -> tuple[dict[str, NDArray[np.int64]], NDArray[np.int64], NDArray[np.int64]]:
    """Row amounts of a chunk: dict of int64 arrays, the block of each row, TOP codes."""
    sizes = blocks.rows[idx]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    block_of_row = np.repeat(np.arange(len(idx)), sizes)
    m = int(sizes.sum())
    # row weights from a few levels: amounts repeat within a cell, as real prices do
    weights = _WEIGHT_LEVELS[rng.integers(0, len(_WEIGHT_LEVELS), m)]
    top = np.zeros(m, dtype=np.int64)
    if with_scope:
        u = rng.random(m)
        cum = np.cumsum([p for _, p, _ in TOP])
        top = np.minimum(np.searchsorted(cum, u, side="right"), len(TOP) - 1)
        weights *= np.asarray([f for _, _, f in TOP])[top]
    amounts = {
        "rem": _split(blocks.rem[idx], weights, block_of_row, starts),
        "pai": _split(blocks.pai[idx], weights, block_of_row, starts),
        "acts": _split(blocks.acts[idx], weights, block_of_row, starts),
    }
    return amounts, block_of_row, top
