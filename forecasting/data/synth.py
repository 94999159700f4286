"""Synthetic monthly files in the real Open DAMIR (or legacy N-table) layout, with ground truth.

The generator starts from an *underlying truth*: one complete monthly series per bottom
category (``famille`` x ``executant`` for Open DAMIR, ``famille`` x ``serie`` for the legacy
tables) by **care month**, with a trend, a yearly seasonality (August and December lows),
a French working-day effect (``holidays.France``), the GP consultation fee rises (May 2017,
Nov 2023, Dec 2024), the spring-2020 lockdown, noise and a few injected anomalies.

Each care month's amount (integer cents) is spread over processing months with the lag
distribution of DOMAIN.md (:data:`LAG_SHARES`; the last 0.5 % is paid at +13..+24 with a
geometric decay, nothing is dropped). An Open DAMIR processing month also carries ~9 % of
its amount with an unknown care month (``SOI_ANN`` ``0000``, ``SOI_MOI`` ``00``); the
legacy tables always carry a care month (``sns_date``).

The rows of a processing month are allocated to (category, care month) *cells* in
proportion to their amounts (at least one row per cell, so a file may hold a few more rows
than asked for when it is very small), about 15 % of the rows of every cell with three rows
or more are small negative regularisations, and each cell's amounts are split over its rows
in integer cents, so that a file's sums equal the truth x lag shares exactly to the cent.

Files are generated and written in chunks (memory does not grow with ``rows_per_month``),
deterministically for a given seed. Beside the monthly files the generator writes
``truth.parquet`` (complete amounts by care month per bottom category, anomalies included:
``famille``, ``executant`` -- ``serie`` for the legacy format --, ``ds``, ``y_reimbursed``,
``y_presented``, ``y_acts``, from 24 months before ``start`` to ``end``), ``lags.csv``
(lag in months, paid share) and ``anomalies.csv`` (``unique_id``, ``ds``, ``basis``,
``factor``).

Row codes: PRS_NAT is drawn among the codes of the row's famille (Jan-2024 frequencies),
PSE_ACT_SNDS / PSE_SPE_SNDS identify the executant, so that
:func:`forecasting.data.codes.famille_expr` and ``executant_expr`` give back the
category; the other code columns follow their Jan-2024 frequencies, with TOP_PS5_TRG
(1: 55 %, 9: 41 %, 0: 4 % of rows; ~95 % of the amount in 1, as in A202501) driving the
"unknown" codes of CPT_ENV_TYP, BEN_CMU_TOP, EXO_MTF, MTM_NAT, PRS_REM_TYP, DRG_AFF_NAT and
ETE_IND_TAA on the rows outside the monthly statistic.
"""

from __future__ import annotations

import gzip
import io
import math
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from typing import IO, Any

import numpy as np
import polars as pl
from numpy.typing import NDArray
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from forecasting.calendar import month_of, working_days
from forecasting.data import codes
from forecasting.data.panel import ROOT_ID, SEP, atomic_path
from forecasting.errors import InputError

__all__ = [
    "OPEN_DAMIR_COLUMNS",
    "LEGACY_COLUMNS",
    "LAG_SHARES",
    "MAX_LAG",
    "UNKNOWN_CARE_SHARE",
    "FORMATS",
    "Category",
    "SynthReport",
    "categories",
    "lag_allocation",
    "generate",
]

# fmt: off
OPEN_DAMIR_COLUMNS: tuple[str, ...] = (
    "FLX_ANN_MOI", "ORG_CLE_REG", "AGE_BEN_SNDS", "BEN_RES_REG", "BEN_CMU_TOP", "BEN_QLT_COD",
    "BEN_SEX_COD", "DDP_SPE_COD", "ETE_CAT_SNDS", "ETE_REG_COD", "ETE_TYP_SNDS", "ETP_REG_COD",
    "ETP_CAT_SNDS", "MDT_TYP_COD", "MFT_COD", "PRS_FJH_TYP", "PRS_ACT_COG", "PRS_ACT_NBR",
    "PRS_ACT_QTE", "PRS_DEP_MNT", "PRS_PAI_MNT", "PRS_REM_BSE", "PRS_REM_MNT", "FLT_ACT_COG",
    "FLT_ACT_NBR", "FLT_ACT_QTE", "FLT_PAI_MNT", "FLT_DEP_MNT", "FLT_REM_MNT", "SOI_ANN",
    "SOI_MOI", "ASU_NAT", "ATT_NAT", "CPL_COD", "CPT_ENV_TYP", "DRG_AFF_NAT", "ETE_IND_TAA",
    "EXO_MTF", "MTM_NAT", "PRS_NAT", "PRS_PPU_SEC", "PRS_REM_TAU", "PRS_REM_TYP",
    "PRS_PDS_QCP", "EXE_INS_REG", "PSE_ACT_SNDS", "PSE_ACT_CAT", "PSE_SPE_SNDS",
    "PSE_STJ_SNDS", "PRE_INS_REG", "PSP_ACT_SNDS", "PSP_ACT_CAT", "PSP_SPE_SNDS",
    "PSP_STJ_SNDS", "TOP_PS5_TRG", "ETB_DCS_MCO",
)
# fmt: on
"""The 56 columns of an Open DAMIR file, in order (DOMAIN.md)."""

# fmt: off
LEGACY_COLUMNS: tuple[str, ...] = (
    "serie", "l_serie", "prs_nat", "l_prs_nat", "exe_spe", "l_exe_spe", "pre_spe", "l_pre_spe",
    "asu_nat", "l_asu_nat", "ben_qlt", "l_ben_qlt", "cpl_cod", "l_cpl_cod", "rem_tau",
    "sns_date", "rec_mon", "rem_mon", "dep_mon", "act_dnb",
)
# fmt: on
"""The columns of a legacy ``N{YYYYMM}.CSV`` table, in order."""

FORMATS = ("open-damir", "legacy")
MAX_LAG = 24
UNKNOWN_CARE_SHARE = 0.09
"""Share of a processing month's amount with an unknown care month (Open DAMIR only)."""

_CUMULATIVE = {0: 0.583, 1: 0.870, 2: 0.936, 3: 0.961, 4: 0.972, 6: 0.983, 9: 0.991, 12: 0.995}


def _lag_shares() -> tuple[float, ...]:
    known = sorted(_CUMULATIVE)
    cum = np.interp(np.arange(13), known, [_CUMULATIVE[k] for k in known])
    shares = list(np.diff(np.concatenate([[0.0], cum])))
    tail = 0.75 ** np.arange(MAX_LAG - 12)
    shares += list((1.0 - cum[-1]) * tail / tail.sum())
    return tuple(float(s) for s in shares)


LAG_SHARES: tuple[float, ...] = _lag_shares()
"""Paid share of a care month by processing lag 0..24 (sums to 1)."""

_CHUNK_ROWS = 300_000
_BLOCK_ROWS = 150_000
_WEIGHT_LEVELS = np.array([0.25, 0.5, 0.75, 1.0, 1.0, 1.5, 2.0, 2.0, 3.0, 4.0, 6.0, 10.0])
_NEGATIVE_ROW_SHARE = 0.15
_NEGATIVE_AMOUNT_SHARE = 0.02
_REF_MONTH = 2024 * 12  # January 2024: calibration month
_REF_TOTAL_EUR = 13.0e9 * (1.0 - UNKNOWN_CARE_SHARE)  # complete care month Jan 2024, all categories
_SEASON = np.array([1.02, 0.99, 1.03, 1.0, 0.98, 1.0, 0.97, 0.84, 1.0, 1.04, 1.0, 0.92])
_GP_FEES = ((2017 * 12 + 4, 25.0), (2023 * 12 + 10, 26.5), (2024 * 12 + 11, 30.0))
_COVID = {2020 * 12 + 2: 0.80, 2020 * 12 + 3: 0.62, 2020 * 12 + 4: 0.86, 2020 * 12 + 5: 0.97}
_COVID_IJ = {2020 * 12 + 2: 1.25, 2020 * 12 + 3: 1.35, 2020 * 12 + 4: 1.10}


# --------------------------------------------------------------------------- categories


@dataclass(frozen=True)
class Category:
    """A bottom category of the synthetic truth.

    Attributes:
        famille: famille slug (level 1).
        member: level-2 slug (executant for Open DAMIR, serie slug for legacy tables).
        act: PSE_ACT_SNDS code written on its rows (Open DAMIR).
        spe: PSE_SPE_SNDS code written on its rows (Open DAMIR), or the legacy serie code.
        share: share of the national amount.
        presented_ratio: FLT_PAI_MNT / FLT_REM_MNT.
        unit_cost: euros reimbursed per act (FLT_ACT_QTE).
        overbilling: FLT_DEP_MNT / FLT_PAI_MNT.
        seasonality: amplitude of the yearly profile (1 = national profile).
        working_days: elasticity to the number of working days in the month.
    """

    famille: str
    member: str
    act: str
    spe: str
    share: float
    presented_ratio: float
    unit_cost: float
    overbilling: float = 0.0
    seasonality: float = 1.0
    working_days: float = 0.8

    @property
    def unique_id(self) -> str:
        """The bottom-level series id (``total/<famille>/<member>``)."""
        return SEP.join((ROOT_ID, self.famille, self.member))


# famille, act, spe, share, presented ratio, unit cost, overbilling, seasonality, working days
_OPEN_DAMIR_CATS: tuple[tuple[str, str, str, float, float, float, float, float, float], ...] = (
    ("generalistes", "0", "1", 0.055, 1.06, 25.0, 0.03, 1.0, 0.9),
    ("specialistes", "0", "3", 0.008, 1.15, 40.0, 0.15, 1.0, 0.9),
    ("specialistes", "0", "5", 0.004, 1.20, 35.0, 0.25, 1.0, 0.9),
    ("specialistes", "0", "7", 0.006, 1.20, 38.0, 0.25, 1.0, 0.9),
    ("specialistes", "0", "12", 0.004, 1.12, 35.0, 0.15, 1.2, 0.9),
    ("specialistes", "0", "33", 0.006, 1.10, 45.0, 0.10, 1.0, 0.9),
    ("specialistes", "0", "15", 0.007, 1.18, 35.0, 0.25, 1.0, 0.9),
    ("specialistes", "0", "11", 0.003, 1.18, 35.0, 0.20, 1.0, 0.9),
    ("specialistes", "0", "42", 0.002, 1.15, 40.0, 0.20, 1.0, 0.9),
    ("specialistes", "0", "32", 0.002, 1.12, 40.0, 0.15, 1.0, 0.9),
    ("specialistes", "0", "14", 0.002, 1.15, 38.0, 0.20, 1.0, 0.9),
    ("specialistes", "0", "13", 0.002, 1.12, 38.0, 0.15, 1.0, 0.9),
    ("actes-techniques", "0", "6", 0.035, 1.08, 60.0, 0.05, 1.0, 1.0),
    ("actes-techniques", "0", "4", 0.025, 1.25, 120.0, 0.30, 1.1, 1.0),
    ("actes-techniques", "0", "2", 0.012, 1.20, 90.0, 0.25, 1.1, 1.0),
    ("actes-techniques", "0", "8", 0.008, 1.15, 80.0, 0.20, 1.0, 1.0),
    ("actes-techniques", "0", "3", 0.008, 1.10, 70.0, 0.10, 1.0, 1.0),
    ("actes-techniques", "0", "15", 0.006, 1.15, 60.0, 0.15, 1.0, 1.0),
    ("actes-techniques", "0", "37", 0.004, 1.05, 30.0, 0.02, 1.0, 1.0),
    ("dentaire", "19", "0", 0.030, 1.10, 30.0, 0.40, 1.2, 1.0),
    ("dentaire", "19", "36", 0.003, 1.10, 50.0, 0.50, 1.2, 1.0),
    ("dentaire", "0", "18", 0.002, 1.10, 40.0, 0.40, 1.2, 1.0),
    ("infirmiers", "24", "0", 0.075, 1.02, 8.0, 0.0, 0.4, 0.3),
    ("kine-auxiliaires", "26", "0", 0.035, 1.03, 17.0, 0.02, 1.2, 0.9),
    ("kine-auxiliaires", "28", "0", 0.008, 1.02, 30.0, 0.01, 1.4, 0.9),
    ("kine-auxiliaires", "29", "0", 0.002, 1.02, 25.0, 0.01, 1.2, 0.9),
    ("kine-auxiliaires", "27", "0", 0.001, 1.05, 25.0, 0.05, 1.0, 0.9),
    ("kine-auxiliaires", "21", "0", 0.004, 1.04, 30.0, 0.02, 0.8, 0.8),
    ("laboratoires", "30", "0", 0.030, 1.03, 20.0, 0.0, 1.0, 1.0),
    ("laboratoires", "30", "38", 0.003, 1.03, 20.0, 0.0, 1.0, 1.0),
    ("pharmacie", "50", "0", 0.240, 1.04, 12.0, 0.0, 0.8, 0.8),
    ("dispositifs-medicaux", "60", "0", 0.045, 1.15, 60.0, 0.05, 0.8, 0.6),
    ("dispositifs-medicaux", "50", "0", 0.030, 1.12, 25.0, 0.05, 0.8, 0.8),
    ("transport", "55", "0", 0.045, 1.02, 90.0, 0.0, 0.8, 0.9),
    ("indemnites-journalieres", "0", "0", 0.120, 1.00, 45.0, 0.0, 0.4, 0.0),
    ("autres", "0", "0", 0.070, 1.02, 200.0, 0.0, 0.6, 0.3),
)

_FAMILLE_DEFAULTS = {  # presented ratio, unit cost, overbilling, seasonality, working days
    f: (r, u, o, s, w) for f, _, _, _, r, u, o, s, w in _OPEN_DAMIR_CATS
}
_LEGACY_EXE_SPE = {
    "generalistes": "1",
    "specialistes": "3",
    "actes-techniques": "6",
    "dentaire": "19",
    "infirmiers": "24",
    "kine-auxiliaires": "26",
    "laboratoires": "30",
}
_LEGACY_SERIES_PER_FAMILLE = 4
_LEGACY_WEIGHTS = (0.5, 0.25, 0.15, 0.10)


@cache
def categories(fmt: str = "open-damir") -> tuple[Category, ...]:
    """The bottom categories of the synthetic truth for a format (shares sum to 1).

    Open DAMIR: famille x executant (36 categories). Legacy: famille x serie, the first
    four series of each famille in Cnam's order (48 categories).
    """
    _check_format(fmt)
    if fmt == "open-damir":
        total = sum(c[3] for c in _OPEN_DAMIR_CATS)
        spe = dict(zip(*codes.specialties().select("code", "slug"), strict=True))
        act = dict(zip(*codes.activities().select("code", "slug"), strict=True))
        out = []
        for f, a, s, share, ratio, unit, over, season, wd in _OPEN_DAMIR_CATS:
            member = spe[s] if s not in codes.NON_MEDICAL_SPECIALTIES else act[a]
            out.append(Category(f, member, a, s, share / total, ratio, unit, over, season, wd))
        return tuple(out)
    series = codes._serie_table()
    famille_share: dict[str, float] = {}
    for f, *_, share, _r, _u, _o, _s, _w in _OPEN_DAMIR_CATS:
        famille_share[f] = famille_share.get(f, 0.0) + share
    total = sum(famille_share.values())
    out = []
    for famille in codes.FAMILLES:
        rows = series.filter(pl.col("famille") == famille).head(_LEGACY_SERIES_PER_FAMILLE)
        if rows.is_empty():
            continue
        weights = np.array(_LEGACY_WEIGHTS[: rows.height])
        weights = weights / weights.sum()
        ratio, unit, over, season, wd = _FAMILLE_DEFAULTS[famille]
        for (serie, slug), w in zip(rows.select("serie", "slug").iter_rows(), weights, strict=True):
            share = famille_share[famille] / total * float(w)
            out.append(Category(famille, slug, "0", serie, share, ratio, unit, over, season, wd))
    return tuple(out)


# --------------------------------------------------------------------------- calendar


def _month_index(text: str, what: str) -> int:
    try:
        year, month = (int(part) for part in text.split("-"))
    except ValueError:
        year, month = 0, 0
    if not (1900 <= year <= 2200 and 1 <= month <= 12) or len(text) != 7:
        raise InputError(
            f"{what} {text!r} is not a month", column=what, hint="write it as YYYY-MM, e.g. 2015-01"
        )
    return year * 12 + month - 1


def _ym(index: int) -> tuple[int, int]:
    month = month_of(index)
    return month.year, month.month


# --------------------------------------------------------------------------- truth


def _gp_fee_factor(index: int) -> float:
    fee = 23.0
    for start, value in _GP_FEES:
        if index >= start:
            fee = value
    return 0.35 + 0.65 * fee / 23.0


def _truth_cents(
    cats: tuple[Category, ...], months: NDArray[np.int64], seed: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Complete (reimbursed, presented, acts) per category and care month, before anomalies."""
    n_cat, n_month = len(cats), len(months)
    rem = np.zeros((n_cat, n_month), dtype=np.int64)
    pai = np.zeros_like(rem)
    acts = np.zeros_like(rem)
    wd = np.array([working_days(*_ym(int(m))) for m in months], dtype=float)
    wd_ref = 20.9
    for k, cat in enumerate(cats):
        params = np.random.default_rng([seed, 7, k])
        growth = float(0.03 + 0.012 * params.standard_normal())
        for j, m in enumerate(months):
            noise = np.random.default_rng([seed, 11, k, int(m)]).standard_normal(3)
            moy = int(m) % 12
            season = 1.0 + cat.seasonality * (_SEASON[moy] - 1.0)
            value = (
                _REF_TOTAL_EUR
                * cat.share
                * math.exp(growth * (int(m) - _REF_MONTH) / 12.0)
                * season
                * (wd[j] / wd_ref) ** cat.working_days
                * math.exp(0.02 * noise[0])
            )
            if cat.famille == "generalistes":
                value *= _gp_fee_factor(int(m)) / _gp_fee_factor(_REF_MONTH)
            covid = _COVID_IJ if cat.famille == "indemnites-journalieres" else _COVID
            value *= covid.get(int(m), 1.0)
            cents = round(value * 100)
            rem[k, j] = cents
            pai[k, j] = round(cents * cat.presented_ratio * (1.0 + 0.004 * noise[1]))
            acts[k, j] = max(1, round(value / cat.unit_cost * (1.0 + 0.01 * noise[2])))
    return rem, pai, acts


def _anomalies(
    cats: tuple[Category, ...], first: int, last: int, seed: int
) -> list[tuple[int, int, float]]:
    """A few (category index, care month index, factor) to inject."""
    rng = np.random.default_rng([seed, 13])
    big = [k for k, c in enumerate(cats) if c.share >= 0.01]
    lo = first + 12 if last - first >= 18 else first
    hi = max(lo, last - 1)
    factors = (0.7, 1.4, 0.8, 1.25)
    out: list[tuple[int, int, float]] = []
    used: set[tuple[int, int]] = set()
    for factor in factors:
        k = int(rng.choice(big))
        month = int(rng.integers(lo, hi + 1))
        if (k, month) in used:
            continue
        used.add((k, month))
        out.append((k, month, factor))
    return out


def lag_allocation(total: NDArray[np.int64], shares: tuple[float, ...] = LAG_SHARES) -> Any:
    """Split integer totals over lags in proportion to ``shares`` (largest remainder).

    Args:
        total: integer amounts (any shape).
        shares: paid share per lag (sums to 1).

    Returns:
        An int64 array of shape ``total.shape + (len(shares),)`` whose last axis sums to
        ``total`` exactly.
    """
    t = np.asarray(total, dtype=np.int64)
    w = np.asarray(shares, dtype=float)
    w = w / w.sum()
    raw = t[..., None].astype(float) * w
    base = np.floor(raw).astype(np.int64)
    left = t - base.sum(axis=-1)
    order = np.argsort(-(raw - base), axis=-1, kind="stable")
    rank = np.argsort(order, axis=-1, kind="stable")
    return base + (rank < left[..., None]).astype(np.int64)


# --------------------------------------------------------------------------- row codes


@dataclass(frozen=True)
class _Dim:
    """Codes of one column with a 16-bit lookup table for fast weighted draws."""

    codes: pl.Series
    lut: NDArray[np.uint16]

    @classmethod
    def of(cls, values: list[str], weights: list[float]) -> _Dim:
        w = np.asarray(weights, dtype=float)
        if w.sum() <= 0:
            w = np.ones_like(w)
        cum = np.cumsum(w / w.sum())
        grid = (np.arange(65536) + 0.5) / 65536
        lut = np.minimum(np.searchsorted(cum, grid, side="right"), len(values) - 1)
        return cls(pl.Series(values, dtype=pl.String), lut.astype(np.uint16))

    def draw(self, rng: np.random.Generator, n: int) -> pl.Series:
        return self.codes.gather(self.lut[rng.integers(0, 65536, n, dtype=np.uint16)])


# Columns whose "unknown" code marks the rows out of the monthly statistic (TOP_PS5_TRG 9).
_LINKED_UNKNOWN = {
    "CPT_ENV_TYP": "9",
    "BEN_CMU_TOP": "9",
    "EXO_MTF": "99",
    "MTM_NAT": "9",
    "PRS_REM_TYP": "99",
    "DRG_AFF_NAT": "99",
    "ETE_IND_TAA": "9",
}
# TOP_PS5_TRG: row shares of A202501 (06_scope.csv) and amount weights giving ~95.5 % of
# the amount in the monthly statistic's scope.
_TOP = (("1", 0.55, 1.0), ("9", 0.41, 0.063), ("0", 0.04, 0.001))
_REM_TAU = (("100", 0.35), ("70", 0.2), ("65", 0.2), ("60", 0.1), ("80", 0.05), ("0", 0.1))


@cache
def _dims() -> dict[str, tuple[_Dim, _Dim | None]]:
    """Per column: draws for rows in the statistic's scope, and for rows out of it."""
    freq = codes.code_frequencies()
    out: dict[str, tuple[_Dim, _Dim | None]] = {}
    for (name,), sub in freq.group_by(["dimension"], maintain_order=True):
        name = str(name)
        if name not in OPEN_DAMIR_COLUMNS:
            continue
        values = sub["code"].to_list()
        weights = [float(x) for x in sub["rows_jan2024"].to_list()]
        unknown = _LINKED_UNKNOWN.get(name)
        if unknown is not None and unknown in values:
            w_in = [0.0 if v == unknown else w for v, w in zip(values, weights, strict=True)]
            out[name] = (_Dim.of(values, w_in), _Dim.of([unknown], [1.0]))
        else:
            out[name] = (_Dim.of(values, weights), None)
    return out


@cache
def _prs_candidates(famille: str, gp: bool) -> _Dim:
    """PRS_NAT codes a row of this famille (and executant specialty) may carry."""
    t = codes._prs_table().filter(pl.col("rows_jan2024") > 0)
    if famille == "generalistes":
        t = t.filter((pl.col("famille") == famille) | pl.col("by_specialty"))
    elif famille == "specialistes":
        t = t.filter(pl.col("by_specialty"))
    else:
        t = t.filter((pl.col("famille") == famille) & ~pl.col("by_specialty"))
    if not gp and famille == "generalistes":  # pragma: no cover - categories never do this
        raise ValueError("generalistes rows need a GP specialty")
    return _Dim.of(t["prs_nat"].to_list(), [float(x) for x in t["rows_jan2024"].to_list()])


@cache
def _legacy_dims() -> dict[str, tuple[list[str], list[str]]]:
    leg = codes.legacy_codes()
    return {
        str(d): (sub["code"].to_list(), sub["label"].to_list())
        for (d,), sub in leg.group_by(["dimension"], maintain_order=True)
    }


@cache
def _legacy_prs(famille: str) -> tuple[list[str], list[str]]:
    leg = codes.legacy_codes().filter(pl.col("dimension") == "prs_nat")
    fam = codes._prs_table().select("prs_nat", "famille", "by_specialty")
    joined = leg.join(fam, left_on="code", right_on="prs_nat", how="left")
    if famille in ("generalistes", "specialistes"):
        sub = joined.filter(pl.col("by_specialty") | (pl.col("famille") == famille))
    else:
        sub = joined.filter(pl.col("famille") == famille)
    if sub.is_empty():
        sub = joined
    return sub["code"].to_list(), sub["label"].to_list()


# --------------------------------------------------------------------------- splitting


@dataclass
class _Blocks:
    """Row blocks of one processing month: contiguous rows of one cell and one sign."""

    cat: NDArray[np.int64]
    care: NDArray[np.int64]  # care month index, -1 = unknown
    rows: NDArray[np.int64]
    rem: NDArray[np.int64]
    pai: NDArray[np.int64]
    acts: NDArray[np.int64]
    negative: NDArray[np.bool_]


def _largest_remainder(total: int, weights: NDArray[np.float64]) -> NDArray[np.int64]:
    raw = total * weights / weights.sum()
    base = np.floor(raw).astype(np.int64)
    left = total - int(base.sum())
    order = np.argsort(-(raw - base), kind="stable")
    base[order[:left]] += 1
    return base


def _blocks(
    cat: NDArray[np.int64],
    care: NDArray[np.int64],
    rem: NDArray[np.int64],
    pai: NDArray[np.int64],
    acts: NDArray[np.int64],
    n_rows: int,
) -> _Blocks:
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
    return _Blocks(negative=np.asarray(negative, dtype=bool), **arrays)


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


# --------------------------------------------------------------------------- chunks


def _chunks(blocks: _Blocks) -> Iterator[NDArray[np.int64]]:
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


def _chunk_rows(
    blocks: _Blocks, idx: NDArray[np.int64], rng: np.random.Generator, with_scope: bool
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
        cum = np.cumsum([p for _, p, _ in _TOP])
        top = np.minimum(np.searchsorted(cum, u, side="right"), len(_TOP) - 1)
        weights *= np.asarray([f for _, _, f in _TOP])[top]
    amounts = {
        "rem": _split(blocks.rem[idx], weights, block_of_row, starts),
        "pai": _split(blocks.pai[idx], weights, block_of_row, starts),
        "acts": _split(blocks.acts[idx], weights, block_of_row, starts),
    }
    return amounts, block_of_row, top


def _cents(values: NDArray[np.int64]) -> pl.Series:
    return pl.Series(values / 100.0, dtype=pl.Float64)


def _open_damir_frame(
    blocks: _Blocks,
    idx: NDArray[np.int64],
    rng: np.random.Generator,
    cats: tuple[Category, ...],
    processing: int,
) -> pl.DataFrame:
    amounts, block_of_row, top = _chunk_rows(blocks, idx, rng, with_scope=True)
    m = len(block_of_row)
    cat_of_row = blocks.cat[idx][block_of_row]
    care_of_row = blocks.care[idx][block_of_row]
    prs_parts: list[pl.Series] = []
    sizes = blocks.rows[idx]
    for b, k in enumerate(blocks.cat[idx]):
        cat = cats[int(k)]
        prs_parts.append(_prs_candidates(cat.famille, cat.spe == "1").draw(rng, int(sizes[b])))
    prs_col = pl.concat(prs_parts)
    cat_table = pl.DataFrame(
        {
            "act": [c.act for c in cats],
            "spe": [c.spe for c in cats],
            "over": [c.overbilling for c in cats],
        }
    )
    gathered = cat_table.select(pl.all().gather(pl.Series(cat_of_row)))
    year, month = np.divmod(care_of_row, 12)
    unknown = care_of_row < 0
    soi_ann = np.where(unknown, 0, year)
    soi_moi = np.where(unknown, 0, month + 1)
    out_of_scope = pl.Series(top == 1)  # TOP_PS5_TRG 9: outside the monthly statistic
    dims = _dims()
    cols: dict[str, pl.Series | pl.Expr] = {}
    p_year, p_month = _ym(processing)
    for name in OPEN_DAMIR_COLUMNS:
        if name in dims:
            normal, unknown_dim = dims[name]
            values = normal.draw(rng, m)
            if unknown_dim is not None:
                values = pl.select(
                    pl.when(out_of_scope).then(pl.lit(unknown_dim.codes[0])).otherwise(values)
                ).to_series()
            cols[name] = values
    rem, pai, acts = amounts["rem"], amounts["pai"], amounts["acts"]
    over = np.floor(np.maximum(pai, 0) * gathered["over"].to_numpy()).astype(np.int64)
    tau = _Dim.of([v for v, _ in _REM_TAU], [p for _, p in _REM_TAU]).draw(rng, m)
    frame = pl.DataFrame(
        {
            **{k: v for k, v in cols.items() if isinstance(v, pl.Series)},
            "FLX_ANN_MOI": pl.repeat(f"{p_year:04d}{p_month:02d}", m, eager=True),
            "PRS_ACT_COG": acts,
            "PRS_ACT_NBR": acts,
            "PRS_ACT_QTE": acts,
            "PRS_DEP_MNT": _cents(over),
            "PRS_PAI_MNT": _cents(pai),
            "PRS_REM_BSE": _cents(pai),
            "PRS_REM_MNT": _cents(rem),
            "FLT_ACT_COG": acts,
            "FLT_ACT_NBR": acts,
            "FLT_ACT_QTE": acts,
            "FLT_PAI_MNT": _cents(pai),
            "FLT_DEP_MNT": _cents(over),
            "FLT_REM_MNT": _cents(rem),
            "SOI_ANN": pl.Series(soi_ann).cast(pl.String).str.zfill(4),
            "SOI_MOI": pl.Series(soi_moi).cast(pl.String).str.zfill(2),
            "PRS_NAT": prs_col,
            "PRS_REM_TAU": tau,
            "PSE_ACT_SNDS": gathered["act"],
            "PSE_SPE_SNDS": gathered["spe"],
            "TOP_PS5_TRG": pl.Series([t for t, _, _ in _TOP]).gather(top),
            "ETB_DCS_MCO": pl.repeat("0", m, eager=True),
        }
    )
    return frame.select(OPEN_DAMIR_COLUMNS)


def _legacy_frame(
    blocks: _Blocks,
    idx: NDArray[np.int64],
    rng: np.random.Generator,
    cats: tuple[Category, ...],
) -> pl.DataFrame:
    amounts, block_of_row, _ = _chunk_rows(blocks, idx, rng, with_scope=False)
    m = len(block_of_row)
    sizes = blocks.rows[idx]
    legacy = _legacy_dims()
    series = codes._serie_table()
    serie_label = dict(zip(series["serie"].to_list(), series["label"].to_list(), strict=True))
    exe_label = dict(zip(*legacy["exe_spe"], strict=True))
    parts: dict[str, list[pl.Series]] = {k: [] for k in ("serie", "prs", "prs_l", "exe")}
    for b, k in enumerate(blocks.cat[idx]):
        cat = cats[int(k)]
        n = int(sizes[b])
        parts["serie"].append(pl.repeat(cat.spe, n, eager=True))
        prs_codes, prs_labels = _legacy_prs(cat.famille)
        pick = rng.integers(0, len(prs_codes), n)
        parts["prs"].append(pl.Series(prs_codes, dtype=pl.String).gather(pick))
        parts["prs_l"].append(pl.Series(prs_labels, dtype=pl.String).gather(pick))
        parts["exe"].append(pl.repeat(_LEGACY_EXE_SPE.get(cat.famille, "99"), n, eager=True))
    serie = pl.concat(parts["serie"])
    exe = pl.concat(parts["exe"])
    care = blocks.care[idx][block_of_row]
    year, month = np.divmod(care, 12)
    cols: dict[str, pl.Series] = {
        "serie": serie,
        "l_serie": serie.replace_strict(serie_label, return_dtype=pl.String),
        "prs_nat": pl.concat(parts["prs"]),
        "l_prs_nat": pl.concat(parts["prs_l"]),
        "exe_spe": exe,
        "l_exe_spe": exe.replace_strict(exe_label, return_dtype=pl.String),
    }
    for name in ("pre_spe", "asu_nat", "ben_qlt", "cpl_cod"):
        values, labels = legacy[name]
        pick = rng.integers(0, len(values), m)
        cols[name] = pl.Series(values, dtype=pl.String).gather(pick)
        cols["l_" + name] = pl.Series(labels, dtype=pl.String).gather(pick)
    rem, pai, acts = amounts["rem"], amounts["pai"], amounts["acts"]
    over_ratio = np.asarray([c.overbilling for c in cats])[blocks.cat[idx][block_of_row]]
    frame = pl.DataFrame(
        {
            **cols,
            "rem_tau": _Dim.of([v for v, _ in _REM_TAU], [p for _, p in _REM_TAU]).draw(rng, m),
            "sns_date": pl.Series(year * 100 + month + 1).cast(pl.String),
            "rec_mon": _cents(pai),
            "rem_mon": _cents(rem),
            "dep_mon": _cents(np.floor(np.maximum(pai, 0) * over_ratio).astype(np.int64)),
            "act_dnb": acts,
        }
    )
    return frame.select(LEGACY_COLUMNS)


# --------------------------------------------------------------------------- report


@dataclass
class SynthReport:
    """What :func:`generate` wrote.

    Attributes:
        out_dir: the output folder.
        fmt: ``open-damir`` or ``legacy``.
        files: the monthly files, in month order.
        rows: rows written over all monthly files.
        months: processing months ``YYYY-MM``.
        totals: one row per processing month: ``month``, ``file``, ``rows``,
            ``negative_rows``, ``reimbursed``, ``presented``, ``acts``, ``unknown_care``
            (reimbursed amount with an unknown care month).
        truth_path, lags_path, anomalies_path: the ground-truth files.
        anomalies: the injected anomalies (``unique_id``, ``ds``, ``basis``, ``factor``).
        seconds: wall time.
    """

    out_dir: Path
    fmt: str
    files: list[Path] = field(default_factory=list)
    rows: int = 0
    months: list[str] = field(default_factory=list)
    totals: pl.DataFrame = field(default_factory=pl.DataFrame)
    truth_path: Path | None = None
    lags_path: Path | None = None
    anomalies_path: Path | None = None
    anomalies: pl.DataFrame = field(default_factory=pl.DataFrame)
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        """Generation speed over the whole run."""
        return self.rows / self.seconds if self.seconds > 0 else float("nan")

    def summary_table(self) -> Table:
        """A short rich table: totals per year (per month for runs of 24 months or less)."""
        per_month = len(self.months) <= 24
        key = pl.col("month") if per_month else pl.col("month").str.slice(0, 4)
        agg = (
            self.totals.group_by(key.alias("period"), maintain_order=True)
            .agg(
                pl.len().alias("files"),
                pl.col("rows").sum(),
                pl.col("negative_rows").sum(),
                pl.col("reimbursed").sum(),
                pl.col("presented").sum(),
                pl.col("unknown_care").sum(),
            )
            .sort("period")
        )
        table = Table(title=f"spendcast synth ({self.fmt}) -> {self.out_dir}")
        for name in ("period", "files", "rows", "negative rows", "reimbursed (bn€)"):
            table.add_column(name, justify="right")
        table.add_column("presented (bn€)", justify="right")
        table.add_column("unknown care month", justify="right")
        for r in agg.iter_rows(named=True):
            share = r["unknown_care"] / r["reimbursed"] if r["reimbursed"] else 0.0
            table.add_row(
                r["period"],
                str(r["files"]),
                f"{r['rows']:,}",
                f"{r['negative_rows']:,}",
                f"{r['reimbursed'] / 1e9:,.2f}",
                f"{r['presented'] / 1e9:,.2f}",
                f"{share:.1%}",
            )
        table.caption = (
            f"{len(self.files)} files, {self.rows:,} rows in {self.seconds:,.1f} s "
            f"({self.rows_per_second:,.0f} rows/s); {self.anomalies.height} anomalies injected"
        )
        return table


# --------------------------------------------------------------------------- writing


class _Writer:
    """Chunked CSV writer: ``;`` separator, optional trailing ``;``, optional gzip.

    Compression runs in one background thread (zlib releases the GIL) while the next chunk
    is generated; at most two chunks wait, so memory stays bounded.
    """

    def __init__(self, raw: IO[bytes], columns: tuple[str, ...], *, gz: bool, trailing: bool):
        self._raw = raw
        self._out: IO[bytes] | gzip.GzipFile = (
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=1, mtime=0)
            if gz
            else raw
        )
        self._trailing = trailing
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._pending: list[Future[int]] = []
        header = ";".join(columns) + (";" if trailing else "") + "\n"
        self._submit(header.encode())

    def _submit(self, data: bytes) -> None:
        while len(self._pending) >= 2:
            self._pending.pop(0).result()
        self._pending.append(self._pool.submit(self._out.write, data))

    def write(self, frame: pl.DataFrame) -> None:
        if self._trailing:  # an empty last column gives every line its trailing ";"
            frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(""))
        buf = io.BytesIO()
        frame.write_csv(
            buf, separator=";", include_header=False, float_precision=2, line_terminator="\n"
        )
        self._submit(buf.getvalue())

    def close(self) -> None:
        try:
            for fut in self._pending:
                fut.result()
        finally:
            self._pool.shutdown(wait=True)
        if self._out is not self._raw:
            self._out.close()


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise InputError(
            f"unknown format {fmt!r}", column="format", hint="use open-damir or legacy"
        )


def generate(
    out_dir: str | Path,
    *,
    start: str = "2015-01",
    end: str = "2024-12",
    seed: int = 0,
    rows_per_month: int = 5_000,
    fmt: str = "open-damir",
    console: Console | None = None,
) -> SynthReport:
    """Write synthetic monthly files and their ground truth into ``out_dir``.

    Args:
        out_dir: folder to write into (created if needed).
        start: first processing month, ``YYYY-MM``.
        end: last processing month, ``YYYY-MM``.
        seed: random seed; the same seed gives the same bytes.
        rows_per_month: rows per monthly file (1,000 to 40,000,000); a file holds at least
            one row per non-empty (category, care month) cell.
        fmt: ``open-damir`` (``A{YYYYMM}.csv.gz``) or ``legacy`` (``N{YYYYMM}.CSV``).
        console: where to show progress bars (None: no display).

    Returns:
        A :class:`SynthReport`.

    Raises:
        InputError: bad month, range, row count or format.
    """
    t0 = time.perf_counter()
    _check_format(fmt)
    first = _month_index(start, "start")
    last = _month_index(end, "end")
    if last < first:
        raise InputError(
            f"end {end} is before start {start}", column="end", hint="give end >= start"
        )
    if not 1_000 <= rows_per_month <= 40_000_000:
        raise InputError(
            f"rows_per_month {rows_per_month:,} is out of range",
            column="rows_per_month",
            hint="use 1,000 to 40,000,000",
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cats = categories(fmt)
    care_months = np.arange(first - MAX_LAG, last + 1, dtype=np.int64)
    rem, pai, acts = _truth_cents(cats, care_months, seed)
    anomalies = _anomalies(cats, first, last, seed)
    for k, month, factor in anomalies:
        j = month - int(care_months[0])
        rem[k, j] = round(rem[k, j] * factor)
        pai[k, j] = round(pai[k, j] * factor)
        acts[k, j] = max(1, round(acts[k, j] * factor))
    alloc = {"rem": lag_allocation(rem), "pai": lag_allocation(pai), "acts": lag_allocation(acts)}

    report = SynthReport(out_dir=out, fmt=fmt)
    month_rows: list[dict[str, Any]] = []
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=console is None,
        transient=False,
    )
    with progress:
        for p in range(first, last + 1):
            year, month = _ym(p)
            name = (
                f"A{year:04d}{month:02d}.csv.gz"
                if fmt == "open-damir"
                else f"N{year:04d}{month:02d}.CSV"
            )
            path = out / name
            cat_idx, care_idx, c_rem, c_pai, c_acts = _month_blocks(
                cats, care_months, alloc, p, fmt
            )
            blocks = _blocks(cat_idx, care_idx, c_rem, c_pai, c_acts, rows_per_month)
            task = progress.add_task(name, total=int(blocks.rows.sum()))
            rng = np.random.default_rng([seed, 17, p])
            columns = OPEN_DAMIR_COLUMNS if fmt == "open-damir" else LEGACY_COLUMNS
            with atomic_path(path) as tmp, tmp.open("wb") as raw:
                tmp.chmod(0o644)
                writer = _Writer(raw, columns, gz=fmt == "open-damir", trailing=fmt == "open-damir")
                try:
                    for idx in _chunks(blocks):
                        if fmt == "open-damir":
                            frame = _open_damir_frame(blocks, idx, rng, cats, p)
                        else:
                            frame = _legacy_frame(blocks, idx, rng, cats)
                        writer.write(frame)
                        progress.advance(task, frame.height)
                finally:
                    writer.close()
            report.files.append(path)
            report.months.append(f"{year:04d}-{month:02d}")
            n = int(blocks.rows.sum())
            report.rows += n
            month_rows.append(
                {
                    "month": f"{year:04d}-{month:02d}",
                    "file": name,
                    "rows": n,
                    "negative_rows": int(blocks.rows[blocks.negative].sum()),
                    "reimbursed": int(blocks.rem.sum()) / 100.0,
                    "presented": int(blocks.pai.sum()) / 100.0,
                    "acts": float(blocks.acts.sum()),
                    "unknown_care": int(blocks.rem[blocks.care < 0].sum()) / 100.0,
                }
            )
    report.totals = pl.DataFrame(month_rows)
    level = "executant" if fmt == "open-damir" else "serie"
    report.truth_path = _write_truth(
        out / "truth.parquet", cats, care_months, rem, pai, acts, level
    )
    report.lags_path = _write_lags(out / "lags.csv")
    report.anomalies = pl.DataFrame(
        {
            "unique_id": [cats[k].unique_id for k, _, _ in anomalies],
            "ds": [f"{_ym(m)[0]:04d}-{_ym(m)[1]:02d}-01" for _, m, _ in anomalies],
            "basis": ["care"] * len(anomalies),
            "factor": [f for _, _, f in anomalies],
        },
        schema={"unique_id": pl.String, "ds": pl.String, "basis": pl.String, "factor": pl.Float64},
    )
    report.anomalies_path = out / "anomalies.csv"
    with atomic_path(report.anomalies_path) as tmp:
        tmp.chmod(0o644)
        report.anomalies.write_csv(tmp)
    report.seconds = time.perf_counter() - t0
    return report


def _month_blocks(
    cats: tuple[Category, ...],
    care_months: NDArray[np.int64],
    alloc: dict[str, Any],
    processing: int,
    fmt: str,
) -> tuple[NDArray[np.int64], NDArray[np.int64], Any, Any, Any]:
    """The cells of one processing month: (cat, care, rem, pai, acts) arrays."""
    n_cat = len(cats)
    first_care = int(care_months[0])
    lags = np.arange(MAX_LAG + 1)
    care = processing - lags
    j = care - first_care
    ok = j >= 0
    care, lag, j = care[ok], lags[ok], j[ok]
    cat_idx = np.repeat(np.arange(n_cat), len(care))
    care_idx = np.tile(care, n_cat)
    rem = alloc["rem"][:, j, lag].reshape(-1)
    pai = alloc["pai"][:, j, lag].reshape(-1)
    acts = alloc["acts"][:, j, lag].reshape(-1)
    if fmt == "open-damir":
        ratio = UNKNOWN_CARE_SHARE / (1.0 - UNKNOWN_CARE_SHARE)
        known = [x.reshape(n_cat, -1).sum(axis=1) for x in (rem, pai, acts)]
        unknown = [np.round(k * ratio).astype(np.int64) for k in known]
        cat_idx = np.concatenate([cat_idx, np.arange(n_cat)])
        care_idx = np.concatenate([care_idx, np.full(n_cat, -1)])
        rem, pai, acts = (
            np.concatenate([x, u]) for x, u in zip((rem, pai, acts), unknown, strict=True)
        )
    return cat_idx.astype(np.int64), care_idx.astype(np.int64), rem, pai, acts


def _write_truth(
    path: Path,
    cats: tuple[Category, ...],
    care_months: NDArray[np.int64],
    rem: NDArray[np.int64],
    pai: NDArray[np.int64],
    acts: NDArray[np.int64],
    level: str,
) -> Path:
    n_month = len(care_months)
    ds = [date(*_ym(int(m)), 1) for m in care_months]
    truth = pl.DataFrame(
        {
            "famille": np.repeat([c.famille for c in cats], n_month),
            level: np.repeat([c.member for c in cats], n_month),
            "ds": ds * len(cats),
            "y_reimbursed": rem.reshape(-1) / 100.0,
            "y_presented": pai.reshape(-1) / 100.0,
            "y_acts": acts.reshape(-1).astype(float),
        },
        schema={
            "famille": pl.String,
            level: pl.String,
            "ds": pl.Date,
            "y_reimbursed": pl.Float64,
            "y_presented": pl.Float64,
            "y_acts": pl.Float64,
        },
    )
    with atomic_path(path) as tmp:
        tmp.chmod(0o644)
        truth.write_parquet(tmp)
    return path


def _write_lags(path: Path) -> Path:
    lags = pl.DataFrame(
        {"lag": list(range(len(LAG_SHARES))), "paid_share": list(LAG_SHARES)},
        schema={"lag": pl.Int64, "paid_share": pl.Float64},
    )
    with atomic_path(path) as tmp:
        tmp.chmod(0o644)
        lags.write_csv(tmp, float_precision=6)
    return path
