"""Code lists of the Assurance Maladie files and the ``famille`` grouping built on them.

The tables live in ``forecasting/data/`` (see ``forecasting/data/NOTICE`` for their origin):

* ``prs_nat.csv``: every PRS_NAT code (benefit nature) with its label, its ``famille`` and
  whether the famille depends on the executant's specialty (consultations and visits:
  general practice -> ``generalistes``, any other specialty -> ``specialistes``);
* ``series.csv``: the 144 series of the legacy monthly statistic, grouped into the same
  familles, with a stable slug each;
* ``specialites.csv`` / ``activites.csv``: the PSE/PSP specialty and activity codes with
  their slugs (the ``executant`` / ``prescripteur`` levels) and their display labels
  (``libelle``: the official upper-case label with its accents and case restored);
* ``code_frequencies.csv``: every Open DAMIR code with its row count in January 2024;
* ``legacy_codes.csv``: the code lists of the legacy N/R tables (with labels).

The expressions below are plain polars expressions (``replace_strict`` on literal
mappings), so they run inside lazy, streaming queries on tens of millions of rows.
"""

from __future__ import annotations

import io
from functools import cache
from importlib import resources

import polars as pl

__all__ = [
    "UNKNOWN",
    "FAMILLES",
    "GP_SPECIALTIES",
    "NON_MEDICAL_SPECIALTIES",
    "famille_expr",
    "executant_expr",
    "prescripteur_expr",
    "famille_of_prs_nat",
    "famille_of_serie",
    "serie_slug_expr",
    "serie_famille_expr",
    "specialties",
    "activities",
    "code_frequencies",
    "legacy_codes",
    "level_labels",
    "CODED_FORMATS",
    "coded_source",
]

UNKNOWN: str = "inconnu"
"""Member for unknown or unmapped codes, at every level."""

FAMILLES: dict[str, str] = {
    "generalistes": "Consultations et visites de médecine générale",
    "specialistes": "Consultations et visites de spécialistes",
    "actes-techniques": "Actes techniques, imagerie, chirurgie, anesthésie",
    "dentaire": "Soins et prothèses dentaires",
    "infirmiers": "Soins infirmiers",
    "kine-auxiliaires": "Kinésithérapie, orthophonie, orthoptie, podologie, sages-femmes",
    "laboratoires": "Biologie (laboratoires)",
    "pharmacie": "Médicaments et honoraires de pharmacie",
    "dispositifs-medicaux": "Dispositifs médicaux (LPP)",
    "transport": "Transports de patients",
    "indemnites-journalieres": "Indemnités journalières",
    "autres": "Autres prestations (cures, prévention, invalidité, décès, rentes, forfaits)",
    UNKNOWN: "Code inconnu",
}
"""Famille slug -> French label, in display order (UNKNOWN last)."""

GP_SPECIALTIES: tuple[str, ...] = ("1", "22", "23")
"""Specialty codes of general practice (22/23 are not in the current lists; kept for safety)."""

NON_MEDICAL_SPECIALTIES: tuple[str, ...] = ("0", "99")
"""Specialty codes that name no specialty (``NON RENSEIGNE``, ``VALEUR INCONNUE``)."""

_DATA = "forecasting.data.codelists"


def _frame(name: str, schema: dict[str, pl.DataType | type[pl.DataType]]) -> pl.DataFrame:
    raw = resources.files(_DATA).joinpath(name).read_bytes()
    df = pl.read_csv(io.BytesIO(raw), infer_schema=False).select(list(schema))
    return df.with_columns(
        (pl.col(c) == "true") if t == pl.Boolean else pl.col(c).cast(t)
        for c, t in schema.items()
        if t != pl.String
    )


@cache
def _prs_table() -> pl.DataFrame:
    return _frame(
        "prs_nat.csv",
        {
            "prs_nat": pl.String,
            "label": pl.String,
            "famille": pl.String,
            "by_specialty": pl.Boolean,
            "rows_jan2024": pl.Int64,
        },
    )


@cache
def _serie_table() -> pl.DataFrame:
    return _frame(
        "series.csv",
        {"serie": pl.String, "label": pl.String, "famille": pl.String, "slug": pl.String},
    )


_ACT_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "code": pl.String,
    "label": pl.String,
    "slug": pl.String,
    "rows_pse_jan2024": pl.Int64,
    "rows_psp_jan2024": pl.Int64,
    "libelle": pl.String,
}


@cache
def specialties() -> pl.DataFrame:
    """PSE/PSP specialty codes: ``code``, ``label``, ``slug``, Jan-2024 row counts, ``libelle``."""
    return _frame("specialites.csv", _ACT_SCHEMA)


@cache
def activities() -> pl.DataFrame:
    """PSE/PSP activity codes: ``code``, ``label``, ``slug``, Jan-2024 row counts, ``libelle``."""
    return _frame("activites.csv", _ACT_SCHEMA)


@cache
def code_frequencies() -> pl.DataFrame:
    """Open DAMIR codes other than PRS_NAT: ``dimension``, ``code``, ``label``, ``rows_jan2024``."""
    return _frame(
        "code_frequencies.csv",
        {"dimension": pl.String, "code": pl.String, "label": pl.String, "rows_jan2024": pl.Int64},
    )


@cache
def legacy_codes() -> pl.DataFrame:
    """Code lists of the legacy N/R tables: ``dimension`` (``exe_spe``...), ``code``, ``label``."""
    return _frame(
        "legacy_codes.csv", {"dimension": pl.String, "code": pl.String, "label": pl.String}
    )


def famille_of_prs_nat() -> pl.DataFrame:
    """Every known PRS_NAT code with its famille.

    Returns:
        Columns ``prs_nat`` (str), ``label`` (str), ``famille`` (str) and ``by_specialty``
        (bool: True when :func:`famille_expr` chooses between ``generalistes`` and
        ``specialistes`` from the executant's specialty; ``famille`` then holds
        ``specialistes``, the choice for any specialty other than general practice).
    """
    return _prs_table().select("prs_nat", "label", "famille", "by_specialty")


def famille_of_serie() -> pl.DataFrame:
    """The 144 legacy series with their famille: ``serie``, ``label``, ``famille``."""
    return _serie_table().select("serie", "label", "famille")


def _variants(mapping: dict[str, str]) -> dict[str, str]:
    """The mapping with keys zero-padded up to 5 digits too (``"1"`` -> ``"01"``, ``"001"``...)."""
    return {
        v: val for key, val in mapping.items() for v in {key, *(key.zfill(w) for w in (2, 3, 4, 5))}
    }


def _text(col: str) -> pl.Expr:
    return pl.col(col).cast(pl.String)


@cache
def _prs_maps() -> tuple[dict[str, str], list[str], list[str]]:
    t = _prs_table()
    fixed = _variants(dict(zip(t["prs_nat"].to_list(), t["famille"].to_list(), strict=True)))
    split = t.filter(pl.col("by_specialty"))["prs_nat"].to_list()
    split_variants = sorted(_variants(dict.fromkeys(split, "")))
    gp_variants = sorted(_variants(dict.fromkeys(GP_SPECIALTIES, "")))
    return fixed, split_variants, gp_variants


def famille_expr(prs_col: str = "PRS_NAT", spe_col: str = "PSE_SPE_SNDS") -> pl.Expr:
    """The famille slug of each row, from its PRS_NAT code (and specialty for consultations).

    Codes are matched as text, with or without leading zeros (``"1111"``, ``"01"``);
    integer columns are cast to text. No Python function runs per row: the expression is a
    literal mapping (``replace_strict``) and works in lazy, streaming queries.

    Args:
        prs_col: the PRS_NAT column.
        spe_col: the executant specialty column (PSE_SPE_SNDS), used only for consultation
            and visit codes: general practice -> ``generalistes``, anything else ->
            ``specialistes``.

    Returns:
        A String expression named ``famille``; unmapped or null PRS_NAT -> :data:`UNKNOWN`.
    """
    fixed, split, gp = _prs_maps()
    code = _text(prs_col)
    base = code.replace_strict(fixed, default=pl.lit(UNKNOWN), return_dtype=pl.String)
    is_gp_consultation = code.is_in(split) & _text(spe_col).is_in(gp)
    return (
        pl.when(is_gp_consultation.fill_null(False))
        .then(pl.lit("generalistes"))
        .otherwise(base)
        .alias("famille")
    )


@cache
def _slug_maps() -> tuple[dict[str, str], dict[str, str]]:
    spe = specialties().filter(~pl.col("code").is_in(list(NON_MEDICAL_SPECIALTIES)))
    act = activities().filter(pl.col("slug") != UNKNOWN)
    return (
        _variants(dict(zip(spe["code"].to_list(), spe["slug"].to_list(), strict=True))),
        _variants(dict(zip(act["code"].to_list(), act["slug"].to_list(), strict=True))),
    )


def _actor_expr(act_col: str, spe_col: str, name: str) -> pl.Expr:
    spe_map, act_map = _slug_maps()
    spe = _text(spe_col).replace_strict(spe_map, default=None, return_dtype=pl.String)
    act = _text(act_col).replace_strict(act_map, default=None, return_dtype=pl.String)
    return pl.coalesce(spe, act, pl.lit(UNKNOWN)).alias(name)


def executant_expr(act_col: str = "PSE_ACT_SNDS", spe_col: str = "PSE_SPE_SNDS") -> pl.Expr:
    """The executant slug: its medical specialty, else its activity, else :data:`UNKNOWN`.

    Specialty codes 0 (not filled) and 99 (unknown) name no specialty; activity codes 0 and
    99 name no activity.
    """
    return _actor_expr(act_col, spe_col, "executant")


def prescripteur_expr(act_col: str = "PSP_ACT_SNDS", spe_col: str = "PSP_SPE_SNDS") -> pl.Expr:
    """The prescriber slug, with the same rules as :func:`executant_expr`."""
    return _actor_expr(act_col, spe_col, "prescripteur")


def serie_slug_expr(col: str = "serie") -> pl.Expr:
    """A stable slug per legacy serie (e.g. ``111111-c-omnipraticiens``); unknown -> UNKNOWN."""
    return _serie_expr(col, "slug", "serie")


def serie_famille_expr(col: str = "serie") -> pl.Expr:
    """The famille slug of a legacy serie code; unknown -> UNKNOWN."""
    return _serie_expr(col, "famille", "famille")


def _serie_expr(col: str, field: str, name: str) -> pl.Expr:
    """The ``field`` of each legacy serie code in ``col`` (named ``name``); unknown -> UNKNOWN."""
    t = _serie_table()
    mapping = dict(zip(t["serie"].to_list(), t[field].to_list(), strict=True))
    code = pl.col(col).cast(pl.String).str.strip_chars().str.to_uppercase()
    return code.replace_strict(mapping, default=pl.lit(UNKNOWN), return_dtype=pl.String).alias(name)


_ACTOR_UNKNOWN = "Non renseigné ou inconnu"


@cache
def _level_labels(level: str) -> tuple[tuple[str, str], ...]:
    if level == "famille":
        return tuple(FAMILLES.items())
    if level in ("executant", "prescripteur"):
        rows = pl.concat([specialties(), activities()]).filter(pl.col("slug") != UNKNOWN)
        pairs = dict(zip(rows["slug"].to_list(), rows["libelle"].to_list(), strict=True))
        return (*pairs.items(), (UNKNOWN, _ACTOR_UNKNOWN))
    if level == "serie":
        t = _serie_table()
        return (*zip(t["slug"].to_list(), t["label"].to_list(), strict=True), (UNKNOWN, "Inconnue"))
    return ()


def level_labels(level: str) -> dict[str, str]:
    """French labels of the members the Open DAMIR and legacy readers write at ``level``.

    Args:
        level: ``famille``, ``executant``, ``prescripteur`` or ``serie``.

    Returns:
        Member slug -> label (``gastro-enterologie-et-hepatologie`` ->
        ``Gastro-entérologie et hépatologie``); empty for any other level name.
    """
    return dict(_level_labels(level))


CODED_FORMATS: tuple[str, ...] = ("open-damir", "legacy")
"""Input formats of the Assurance Maladie's own files (``spendcast.source`` = ``FORMAT:files``)."""


def coded_source(source: str) -> bool:
    """True when a panel's ``spendcast.source`` names an Assurance Maladie file format.

    Such panels have coded members with French labels (:func:`level_labels`) and months of
    the French calendar (working days, public holidays); tidy files have neither for sure.
    """
    return source.split(":", 1)[0] in CODED_FORMATS
