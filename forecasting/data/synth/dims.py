"""The codes written on generated rows, drawn with their January-2024 frequencies.

PRS_NAT is drawn among the codes of the row's famille; the other Open DAMIR code columns
follow their own frequencies, TOP_PS5_TRG driving the "unknown" codes of the columns in
:data:`LINKED_UNKNOWN` on the rows outside the monthly statistic.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import polars as pl
from numpy.typing import NDArray

from forecasting.data import codes
from forecasting.data.synth.layout import OPEN_DAMIR_COLUMNS

__all__ = [
    "Dim",
    "LINKED_UNKNOWN",
    "TOP",
    "REM_TAU",
    "dims",
    "rem_tau",
    "prs_candidates",
    "legacy_dims",
    "legacy_prs",
]


@dataclass(frozen=True)
class Dim:
    """Codes of one column with a 16-bit lookup table for fast weighted draws."""

    codes: pl.Series
    lut: NDArray[np.uint16]

    @classmethod
    def of(cls, values: list[str], weights: list[float]) -> Dim:
        """Draws of ``values`` in proportion to ``weights`` (uniform when they sum to 0)."""
        w = np.asarray(weights, dtype=float)
        if w.sum() <= 0:
            w = np.ones_like(w)
        cum = np.cumsum(w / w.sum())
        grid = (np.arange(65536) + 0.5) / 65536
        lut = np.minimum(np.searchsorted(cum, grid, side="right"), len(values) - 1)
        return cls(pl.Series(values, dtype=pl.String), lut.astype(np.uint16))

    def draw(self, rng: np.random.Generator, n: int) -> pl.Series:
        """``n`` codes."""
        return self.codes.gather(self.lut[rng.integers(0, 65536, n, dtype=np.uint16)])


LINKED_UNKNOWN = {
    "CPT_ENV_TYP": "9",
    "BEN_CMU_TOP": "9",
    "EXO_MTF": "99",
    "MTM_NAT": "9",
    "PRS_REM_TYP": "99",
    "DRG_AFF_NAT": "99",
    "ETE_IND_TAA": "9",
}
"""Columns whose "unknown" code marks the rows out of the monthly statistic (TOP_PS5_TRG 9)."""
TOP = (("1", 0.55, 1.0), ("9", 0.41, 0.063), ("0", 0.04, 0.001))
"""TOP_PS5_TRG: code, row share of A202501 (06_scope.csv) and amount weight (giving ~95.5 %
of the amount in the monthly statistic's scope)."""
REM_TAU = (("100", 0.35), ("70", 0.2), ("65", 0.2), ("60", 0.1), ("80", 0.05), ("0", 0.1))
"""Reimbursement rates and their row shares."""


@cache
def dims() -> dict[str, tuple[Dim, Dim | None]]:
    """Per column: draws for rows in the statistic's scope, and for rows out of it."""
    freq = codes.code_frequencies()
    out: dict[str, tuple[Dim, Dim | None]] = {}
    for (name,), sub in freq.group_by(["dimension"], maintain_order=True):
        name = str(name)
        if name not in OPEN_DAMIR_COLUMNS:
            continue
        values = sub["code"].to_list()
        weights = [float(x) for x in sub["rows_jan2024"].to_list()]
        unknown = LINKED_UNKNOWN.get(name)
        if unknown is not None and unknown in values:
            w_in = [0.0 if v == unknown else w for v, w in zip(values, weights, strict=True)]
            out[name] = (Dim.of(values, w_in), Dim.of([unknown], [1.0]))
        else:
            out[name] = (Dim.of(values, weights), None)
    return out


@cache
def rem_tau() -> Dim:
    """Draws of the reimbursement rate (:data:`REM_TAU`)."""
    return Dim.of([v for v, _ in REM_TAU], [p for _, p in REM_TAU])


@cache
def prs_candidates(famille: str, gp: bool) -> Dim:
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
    return Dim.of(t["prs_nat"].to_list(), [float(x) for x in t["rows_jan2024"].to_list()])


@cache
def legacy_dims() -> dict[str, tuple[list[str], list[str]]]:
    """Codes and labels of each legacy column (``dimension`` of ``legacy_codes``)."""
    leg = codes.legacy_codes()
    return {
        str(d): (sub["code"].to_list(), sub["label"].to_list())
        for (d,), sub in leg.group_by(["dimension"], maintain_order=True)
    }


@cache
def legacy_prs(famille: str) -> tuple[list[str], list[str]]:
    """The legacy prs_nat codes (and labels) a row of this famille may carry."""
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
