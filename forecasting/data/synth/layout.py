"""The layouts of the generated monthly files: columns, formats and file names."""

from __future__ import annotations

from forecasting.data.checks import check_choice

__all__ = ["OPEN_DAMIR_COLUMNS", "LEGACY_COLUMNS", "FORMATS", "check_format", "file_name"]

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


def check_format(fmt: str) -> None:
    """Raise :class:`~forecasting.errors.InputError` unless ``fmt`` is one of :data:`FORMATS`."""
    check_choice(fmt, FORMATS, what="format", column="format")


def file_name(fmt: str, year: int, month: int) -> str:
    """``A{YYYYMM}.csv.gz`` (Open DAMIR) or ``N{YYYYMM}.CSV`` (legacy)."""
    if fmt == "open-damir":
        return f"A{year:04d}{month:02d}.csv.gz"
    return f"N{year:04d}{month:02d}.CSV"
