"""Synthetic monthly files in the real Open DAMIR (or legacy N-table) layout, with ground truth.

The generator starts from an *underlying truth* (:mod:`.truth`): one complete monthly series
per bottom category (:mod:`.categories`: ``famille`` x ``executant`` for Open DAMIR,
``famille`` x ``serie`` for the legacy tables) by **care month**, with a trend, a yearly
seasonality (August and December lows), a French working-day effect (``holidays.France``),
the GP consultation fee rises (May 2017, Nov 2023, Dec 2024), the spring-2020 lockdown,
noise and a few injected anomalies.

Each care month's amount (integer cents) is spread over processing months with the lag
distribution of DOMAIN.md (:data:`LAG_SHARES`; the last 0.5 % is paid at +13..+24 with a
geometric decay, nothing is dropped). An Open DAMIR processing month also carries ~9 % of
its amount with an unknown care month (``SOI_ANN`` ``0000``, ``SOI_MOI`` ``00``); the
legacy tables always carry a care month (``sns_date``).

The rows of a processing month are allocated to (category, care month) *cells* in
proportion to their amounts (:mod:`.cells`: at least one row per cell, so a file may hold a
few more rows than asked for when it is very small), about 15 % of the rows of every cell
with three rows or more are small negative regularisations, and each cell's amounts are
split over its rows in integer cents, so that a file's sums equal the truth x lag shares
exactly to the cent.

Files are generated and written in chunks (:mod:`.generator`, :mod:`.writer`: memory does
not grow with ``rows_per_month``), deterministically for a given seed. Beside the monthly
files the generator writes ``truth.parquet`` (complete amounts by care month per bottom
category, anomalies included: ``famille``, ``executant`` -- ``serie`` for the legacy
format --, ``ds``, ``y_reimbursed``, ``y_presented``, ``y_acts``, from 24 months before
``start`` to ``end``), ``lags.csv`` (lag in months, paid share) and ``anomalies.csv``
(``unique_id``, ``ds``, ``basis``, ``factor``).

Row codes (:mod:`.dims`, :mod:`.rows`): PRS_NAT is drawn among the codes of the row's
famille (Jan-2024 frequencies), PSE_ACT_SNDS / PSE_SPE_SNDS identify the executant, so that
:func:`forecasting.data.codes.famille_expr` and ``executant_expr`` give back the
category; the other code columns follow their Jan-2024 frequencies, with TOP_PS5_TRG
(1: 55 %, 9: 41 %, 0: 4 % of rows; ~95 % of the amount in 1, as in A202501) driving the
"unknown" codes of CPT_ENV_TYP, BEN_CMU_TOP, EXO_MTF, MTM_NAT, PRS_REM_TYP, DRG_AFF_NAT and
ETE_IND_TAA on the rows outside the monthly statistic.
"""

from forecasting.data.synth.categories import Category, categories
from forecasting.data.synth.generator import generate
from forecasting.data.synth.layout import FORMATS, LEGACY_COLUMNS, OPEN_DAMIR_COLUMNS
from forecasting.data.synth.report import SynthReport
from forecasting.data.synth.truth import LAG_SHARES, MAX_LAG, UNKNOWN_CARE_SHARE, lag_allocation

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
