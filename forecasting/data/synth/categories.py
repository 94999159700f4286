"""The bottom categories of the synthetic truth and their parameters."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import polars as pl

from forecasting.data import codes
from forecasting.data.panel import ROOT_ID, SEP
from forecasting.data.synth.layout import check_format

__all__ = ["Category", "LEGACY_EXE_SPE", "categories"]


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
LEGACY_EXE_SPE = {
    "generalistes": "1",
    "specialistes": "3",
    "actes-techniques": "6",
    "dentaire": "19",
    "infirmiers": "24",
    "kine-auxiliaires": "26",
    "laboratoires": "30",
}
"""The exe_spe code written on a legacy row of each famille (99 for the others)."""
_LEGACY_SERIES_PER_FAMILLE = 4
_LEGACY_WEIGHTS = (0.5, 0.25, 0.15, 0.10)


@cache
def categories(fmt: str = "open-damir") -> tuple[Category, ...]:
    """The bottom categories of the synthetic truth for a format (shares sum to 1).

    Open DAMIR: famille x executant (36 categories). Legacy: famille x serie, the first
    four series of each famille in Cnam's order (48 categories).
    """
    check_format(fmt)
    return _open_damir_categories() if fmt == "open-damir" else _legacy_categories()


def _open_damir_categories() -> tuple[Category, ...]:
    total = sum(c[3] for c in _OPEN_DAMIR_CATS)
    spe = dict(zip(*codes.specialties().select("code", "slug"), strict=True))
    act = dict(zip(*codes.activities().select("code", "slug"), strict=True))
    out = []
    for f, a, s, share, ratio, unit, over, season, wd in _OPEN_DAMIR_CATS:
        member = spe[s] if s not in codes.NON_MEDICAL_SPECIALTIES else act[a]
        out.append(Category(f, member, a, s, share / total, ratio, unit, over, season, wd))
    return tuple(out)


def _legacy_categories() -> tuple[Category, ...]:
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
