"""Tests of the code lists and the famille / executant / prescripteur expressions."""

from __future__ import annotations

import re

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecasting.data import codes

SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


def _famille(prs: str | None, spe: str | None = "0") -> str:
    df = pl.LazyFrame(
        {"PRS_NAT": [prs], "PSE_SPE_SNDS": [spe]},
        schema=dict.fromkeys(("PRS_NAT", "PSE_SPE_SNDS"), pl.String),
    )
    return df.select(codes.famille_expr()).collect(engine="streaming").item()


@pytest.mark.parametrize(
    ("prs", "spe", "expected"),
    [
        ("1111", "1", "generalistes"),  # C by a GP
        ("1111", "3", "specialistes"),  # C by a cardiologist
        ("1111", "0", "specialistes"),  # C, specialty not filled
        ("1111", None, "specialistes"),
        ("1111", "01", "generalistes"),  # leading zero
        ("01111", "1", "generalistes"),
        ("001111", "1", codes.UNKNOWN),  # too many zeros for a 4-digit code
        (" 1111", "1", codes.UNKNOWN),  # blanks are not trimmed
        ("1110", "0", "generalistes"),  # G is GP-only
        ("1112", "15", "specialistes"),  # CS
        ("1211", "1", "generalistes"),  # V by a GP
        ("1192", "0", "generalistes"),  # TCG
        ("1951", "1", "generalistes"),  # participation forfaitaire follows the specialty
        ("1321", "4", "actes-techniques"),  # ADC surgery
        ("1351", "6", "actes-techniques"),  # ADI imaging
        ("2351", "6", "actes-techniques"),  # scanner/IRM technical forfait
        ("1451", "0", "dentaire"),
        ("1424", "36", "dentaire"),
        ("3111", "0", "infirmiers"),  # AMI
        ("3116", "0", "infirmiers"),  # MAU
        ("1842", "0", "infirmiers"),  # IFA
        ("3125", "0", "kine-auxiliaires"),  # AMS
        ("3132", "0", "kine-auxiliaires"),  # AMO
        ("1911", "0", "kine-auxiliaires"),  # SF midwives
        ("3211", "0", "laboratoires"),  # B
        ("3223", "0", "laboratoires"),  # TB
        ("3313", "0", "pharmacie"),  # PH7
        ("3386", "0", "pharmacie"),  # HD7
        ("1972", "0", "pharmacie"),  # medicine franchise
        ("3512", "0", "dispositifs-medicaux"),  # AAD
        ("3510", "0", "dispositifs-medicaux"),  # optics
        ("4212", "0", "transport"),  # ambulance
        ("4213", "0", "transport"),  # VSL
        ("4214", "0", "transport"),  # taxi
        ("1974", "0", "transport"),  # transport franchise
        ("6111", "0", "indemnites-journalieres"),
        ("6121", "0", "indemnites-journalieres"),  # maternity
        ("4141", "0", "autres"),  # spa
        ("7111", "0", "autres"),  # invalidity
        ("4511", "0", "autres"),  # death capital
        ("8111", "0", "autres"),  # AT annuities
        ("2111", "0", "autres"),  # GHS stay
        ("9999", "0", codes.UNKNOWN),
        ("4242", "0", codes.UNKNOWN),  # not a code
        ("abc", "0", codes.UNKNOWN),
        (None, "1", codes.UNKNOWN),
    ],
)
def test_famille_of_known_codes(prs: str | None, spe: str | None, expected: str) -> None:
    assert _famille(prs, spe) == expected


def test_familles_are_slugs_in_order() -> None:
    assert list(codes.FAMILLES)[0] == "generalistes"
    assert list(codes.FAMILLES)[-1] == codes.UNKNOWN
    assert len(codes.FAMILLES) == 13
    for slug in codes.FAMILLES:
        assert SLUG.match(slug), slug


def test_every_jan2024_code_with_rows_has_a_famille() -> None:
    t = codes.famille_of_prs_nat().join(
        codes._prs_table().select("prs_nat", "rows_jan2024"), on="prs_nat"
    )
    assert t["prs_nat"].is_unique().all()
    assert set(t["famille"]) <= set(codes.FAMILLES)
    with_rows = t.filter(pl.col("rows_jan2024") > 0)
    total = with_rows["rows_jan2024"].sum()
    assert with_rows.height > 800
    share = with_rows.group_by("famille").agg(pl.col("rows_jan2024").sum() / total)
    shares = dict(share.iter_rows())
    # known codes of other kinds stay a small residual, unknown is (almost) empty
    assert shares["autres"] < 0.05
    big_unknown = with_rows.filter(
        (pl.col("famille") == codes.UNKNOWN) & (pl.col("rows_jan2024") > 0.001 * total)
    )
    assert big_unknown.is_empty()
    assert shares.get(codes.UNKNOWN, 0.0) < 1e-4
    # every famille but UNKNOWN is used
    assert set(shares) >= set(codes.FAMILLES) - {codes.UNKNOWN}


def test_expression_agrees_with_table() -> None:
    t = codes.famille_of_prs_nat()
    got = (
        t.lazy()
        .with_columns(spe=pl.lit("3"))
        .select("famille", codes.famille_expr("prs_nat", "spe").alias("computed"))
    )
    assert (
        got.collect(engine="streaming").filter(pl.col("famille") != pl.col("computed")).is_empty()
    )


def test_by_specialty_codes_split_between_generalists_and_specialists() -> None:
    split = codes.famille_of_prs_nat().filter(pl.col("by_specialty"))
    assert split.height > 100
    assert set(split["famille"]) == {"specialistes"}
    gp = split.lazy().with_columns(spe=pl.lit("1")).select(codes.famille_expr("prs_nat", "spe"))
    assert set(gp.collect()["famille"]) == {"generalistes"}


def test_serie_table_shares_the_famille_tree() -> None:
    s = codes.famille_of_serie()
    assert s.height == 144
    assert s["serie"].is_unique().all()
    assert set(s["famille"]) == set(codes.FAMILLES) - {codes.UNKNOWN}
    expected = {
        "111111": "generalistes",
        "111112": "specialistes",
        "111136": "actes-techniques",
        "11122": "dentaire",
        "1141121": "infirmiers",
        "1141131": "kine-auxiliaires",
        "11421": "laboratoires",
        "114312": "pharmacie",
        "11452": "dispositifs-medicaux",
        "115221": "transport",
        "11611": "indemnites-journalieres",
        "118": "autres",
    }
    got = dict(s.select("serie", "famille").iter_rows())
    for serie, famille in expected.items():
        assert got[serie] == famille, serie


def test_serie_slugs() -> None:
    df = pl.DataFrame({"serie": ["111111", "1111A", "1111a", "999", None]})
    out = df.select(codes.serie_slug_expr(), codes.serie_famille_expr())
    assert out["serie"].to_list() == [
        "111111-c-omnipraticiens",
        "1111a-actes-en-sf",
        "1111a-actes-en-sf",
        codes.UNKNOWN,
        codes.UNKNOWN,
    ]
    assert out["famille"].to_list()[:3] == ["generalistes", "kine-auxiliaires", "kine-auxiliaires"]
    slugs = codes._serie_table()["slug"]
    assert slugs.is_unique().all()
    assert all(SLUG.match(x) for x in slugs)


@pytest.mark.parametrize(
    ("act", "spe", "expected"),
    [
        ("0", "1", "medecine-generale"),
        ("0", "6", "radiologie"),
        ("24", "0", "infirmier"),
        ("50", "0", "pharmacie"),
        ("30", "99", "laboratoire"),
        ("55", None, "transporteur"),
        ("19", "36", "chirurgie-dentaire-specialiste-odf"),
        ("0", "0", codes.UNKNOWN),
        ("99", "99", codes.UNKNOWN),
        (None, None, codes.UNKNOWN),
        ("77", "77", codes.UNKNOWN),
    ],
)
def test_executant_and_prescripteur(act: str | None, spe: str | None, expected: str) -> None:
    df = pl.DataFrame(
        {
            "PSE_ACT_SNDS": [act],
            "PSE_SPE_SNDS": [spe],
            "PSP_ACT_SNDS": [act],
            "PSP_SPE_SNDS": [spe],
        },
        schema=dict.fromkeys(
            ("PSE_ACT_SNDS", "PSE_SPE_SNDS", "PSP_ACT_SNDS", "PSP_SPE_SNDS"), pl.String
        ),
    )
    out = df.lazy().select(codes.executant_expr(), codes.prescripteur_expr()).collect()
    assert out.row(0) == (expected, expected)


def test_actor_slugs_are_valid_and_distinct() -> None:
    spe = codes.specialties().filter(~pl.col("code").is_in(list(codes.NON_MEDICAL_SPECIALTIES)))
    act = codes.activities().filter(pl.col("slug") != codes.UNKNOWN)
    slugs = spe["slug"].to_list() + act["slug"].to_list()
    assert len(slugs) == len(set(slugs))
    assert all(SLUG.match(s) and "/" not in s for s in slugs)


def test_integer_columns_are_accepted() -> None:
    df = pl.DataFrame({"PRS_NAT": [1111, 3111], "PSE_SPE_SNDS": [1, 0], "PSE_ACT_SNDS": [0, 24]})
    out = df.select(codes.famille_expr(), codes.executant_expr())
    assert out.rows() == [("generalistes", "medecine-generale"), ("infirmiers", "infirmier")]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="0123456789 ", max_size=6) | st.none(), min_size=1, max_size=30))
def test_famille_is_total(values: list[str | None]) -> None:
    """Any input gives one famille of the tree, row for row (no row lost or added)."""
    df = pl.DataFrame(
        {"PRS_NAT": values, "PSE_SPE_SNDS": values},
        schema=dict.fromkeys(("PRS_NAT", "PSE_SPE_SNDS"), pl.String),
    )
    out = df.lazy().select(codes.famille_expr(), codes.executant_expr("PRS_NAT")).collect()
    assert out.height == len(values)
    assert set(out["famille"]) <= set(codes.FAMILLES)
    assert out["executant"].null_count() == 0


def test_frequencies_and_legacy_lists() -> None:
    f = codes.code_frequencies()
    dims = set(f["dimension"])
    for d in ("AGE_BEN_SNDS", "BEN_SEX_COD", "BEN_RES_REG", "CPT_ENV_TYP", "TOP_PS5_TRG"):
        assert d in dims
    assert "PRS_NAT" not in dims
    leg = codes.legacy_codes()
    assert set(leg["dimension"]) == {
        "exe_spe",
        "pre_spe",
        "asu_nat",
        "ben_qlt",
        "cpl_cod",
        "prs_nat",
    }
    assert leg.filter(pl.col("dimension") == "prs_nat").height == 324
