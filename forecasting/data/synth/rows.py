"""The rows of one chunk as a frame in the Open DAMIR or the legacy layout.

Random draws happen in a fixed order (amounts, PRS_NAT per block, the other codes in
column order, the reimbursement rate), so that a seed gives the same bytes.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from numpy.typing import NDArray

from forecasting.calendar import month_of
from forecasting.data import codes
from forecasting.data.synth.categories import LEGACY_EXE_SPE, Category
from forecasting.data.synth.cells import Blocks, chunk_rows
from forecasting.data.synth.dims import TOP, dims, legacy_dims, legacy_prs, prs_candidates, rem_tau
from forecasting.data.synth.layout import LEGACY_COLUMNS, OPEN_DAMIR_COLUMNS

__all__ = ["open_damir_frame", "legacy_frame"]


def _cents(values: NDArray[np.int64]) -> pl.Series:
    return pl.Series(values / 100.0, dtype=pl.Float64)


def open_damir_frame(
    blocks: Blocks,
    idx: NDArray[np.int64],
    rng: np.random.Generator,
    cats: tuple[Category, ...],
    processing: int,
) -> pl.DataFrame:
    """The rows of the blocks ``idx`` in the Open DAMIR layout."""
    amounts, block_of_row, top = chunk_rows(blocks, idx, rng, with_scope=True)
    m = len(block_of_row)
    prs_col = pl.concat(
        prs_candidates(cats[int(k)].famille, cats[int(k)].spe == "1").draw(rng, int(n))
        for k, n in zip(blocks.cat[idx], blocks.rows[idx], strict=True)
    )
    drawn = _drawn_codes(rng, m, out_of_scope=pl.Series(top == 1))
    tau = rem_tau().draw(rng, m)
    cat_of_row = blocks.cat[idx][block_of_row]
    cat_table = pl.DataFrame(
        {
            "act": [c.act for c in cats],
            "spe": [c.spe for c in cats],
            "over": [c.overbilling for c in cats],
        }
    )
    gathered = cat_table.select(pl.all().gather(pl.Series(cat_of_row)))
    rem, pai, acts = amounts["rem"], amounts["pai"], amounts["acts"]
    over = np.floor(np.maximum(pai, 0) * gathered["over"].to_numpy()).astype(np.int64)
    p = month_of(processing)
    frame = pl.DataFrame(
        {
            **drawn,
            "FLX_ANN_MOI": pl.repeat(f"{p.year:04d}{p.month:02d}", m, eager=True),
            **dict.fromkeys(("PRS_ACT_COG", "PRS_ACT_NBR", "PRS_ACT_QTE"), acts),
            "PRS_DEP_MNT": _cents(over),
            "PRS_PAI_MNT": _cents(pai),
            "PRS_REM_BSE": _cents(pai),
            "PRS_REM_MNT": _cents(rem),
            **dict.fromkeys(("FLT_ACT_COG", "FLT_ACT_NBR", "FLT_ACT_QTE"), acts),
            "FLT_PAI_MNT": _cents(pai),
            "FLT_DEP_MNT": _cents(over),
            "FLT_REM_MNT": _cents(rem),
            **_care_month_columns(blocks.care[idx][block_of_row]),
            "PRS_NAT": prs_col,
            "PRS_REM_TAU": tau,
            "PSE_ACT_SNDS": gathered["act"],
            "PSE_SPE_SNDS": gathered["spe"],
            "TOP_PS5_TRG": pl.Series([t for t, _, _ in TOP]).gather(top),
            "ETB_DCS_MCO": pl.repeat("0", m, eager=True),
        }
    )
    return frame.select(OPEN_DAMIR_COLUMNS)


def _drawn_codes(rng: np.random.Generator, m: int, out_of_scope: pl.Series) -> dict[str, pl.Series]:
    """Every code column with frequencies, in column order; linked unknowns out of scope."""
    table = dims()
    cols: dict[str, pl.Series] = {}
    for name in (n for n in OPEN_DAMIR_COLUMNS if n in table):
        normal, unknown_dim = table[name]
        values = normal.draw(rng, m)
        if unknown_dim is not None:
            values = pl.select(
                pl.when(out_of_scope).then(pl.lit(unknown_dim.codes[0])).otherwise(values)
            ).to_series()
        cols[name] = values
    return cols


def _care_month_columns(care_of_row: NDArray[np.int64]) -> dict[str, pl.Series]:
    """SOI_ANN and SOI_MOI of each row (``0000`` / ``00`` for an unknown care month)."""
    year, month = np.divmod(care_of_row, 12)
    unknown = care_of_row < 0
    soi_ann = np.where(unknown, 0, year)
    soi_moi = np.where(unknown, 0, month + 1)
    return {
        "SOI_ANN": pl.Series(soi_ann).cast(pl.String).str.zfill(4),
        "SOI_MOI": pl.Series(soi_moi).cast(pl.String).str.zfill(2),
    }


def legacy_frame(
    blocks: Blocks,
    idx: NDArray[np.int64],
    rng: np.random.Generator,
    cats: tuple[Category, ...],
) -> pl.DataFrame:
    """The rows of the blocks ``idx`` in the legacy N-table layout."""
    amounts, block_of_row, _ = chunk_rows(blocks, idx, rng, with_scope=False)
    m = len(block_of_row)
    cols = _legacy_series_columns(blocks, idx, rng, cats)
    legacy = legacy_dims()
    for name in ("pre_spe", "asu_nat", "ben_qlt", "cpl_cod"):
        values, labels = legacy[name]
        pick = rng.integers(0, len(values), m)
        cols[name] = pl.Series(values, dtype=pl.String).gather(pick)
        cols["l_" + name] = pl.Series(labels, dtype=pl.String).gather(pick)
    rem, pai, acts = amounts["rem"], amounts["pai"], amounts["acts"]
    over_ratio = np.asarray([c.overbilling for c in cats])[blocks.cat[idx][block_of_row]]
    year, month = np.divmod(blocks.care[idx][block_of_row], 12)
    frame = pl.DataFrame(
        {
            **cols,
            "rem_tau": rem_tau().draw(rng, m),
            "sns_date": pl.Series(year * 100 + month + 1).cast(pl.String),
            "rec_mon": _cents(pai),
            "rem_mon": _cents(rem),
            "dep_mon": _cents(np.floor(np.maximum(pai, 0) * over_ratio).astype(np.int64)),
            "act_dnb": acts,
        }
    )
    return frame.select(LEGACY_COLUMNS)


def _legacy_series_columns(
    blocks: Blocks, idx: NDArray[np.int64], rng: np.random.Generator, cats: tuple[Category, ...]
) -> dict[str, pl.Series]:
    """serie, prs_nat and exe_spe of each row, with their labels (one prs_nat draw per block)."""
    series = codes._serie_table()
    serie_label = dict(zip(series["serie"].to_list(), series["label"].to_list(), strict=True))
    exe_label = dict(zip(*legacy_dims()["exe_spe"], strict=True))
    parts: dict[str, list[pl.Series]] = {k: [] for k in ("serie", "prs", "prs_l", "exe")}
    for k, size in zip(blocks.cat[idx], blocks.rows[idx], strict=True):
        cat = cats[int(k)]
        n = int(size)
        parts["serie"].append(pl.repeat(cat.spe, n, eager=True))
        prs_codes, prs_labels = legacy_prs(cat.famille)
        pick = rng.integers(0, len(prs_codes), n)
        parts["prs"].append(pl.Series(prs_codes, dtype=pl.String).gather(pick))
        parts["prs_l"].append(pl.Series(prs_labels, dtype=pl.String).gather(pick))
        parts["exe"].append(pl.repeat(LEGACY_EXE_SPE.get(cat.famille, "99"), n, eager=True))
    serie = pl.concat(parts["serie"])
    exe = pl.concat(parts["exe"])
    return {
        "serie": serie,
        "l_serie": serie.replace_strict(serie_label, return_dtype=pl.String),
        "prs_nat": pl.concat(parts["prs"]),
        "l_prs_nat": pl.concat(parts["prs_l"]),
        "exe_spe": exe,
        "l_exe_spe": exe.replace_strict(exe_label, return_dtype=pl.String),
    }
