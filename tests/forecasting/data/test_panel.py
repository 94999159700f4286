from datetime import date

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from forecasting.data.panel import PanelError, PanelMeta, read_panel, validate_panel, write_panel


def _panel(months: int = 3, fam: tuple[str, ...] = ("a", "b")) -> pl.DataFrame:
    rows = [
        {"famille": f, "ds": date(2020, m, 1), "y": float(m)}
        for f in fam
        for m in range(1, months + 1)
    ]
    return pl.DataFrame(rows, schema={"famille": pl.String, "ds": pl.Date, "y": pl.Float64})


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda df: df.drop("y"), "missing column 'y'"),
        (lambda df: df.with_columns(pl.col("y").cast(pl.Int64)), "column 'y' is Int64"),
        (lambda df: df.head(0), "no rows"),
        (lambda df: pl.concat([df, df.head(1)]), "duplicated"),
        (lambda df: df.filter(pl.col("ds") != date(2020, 2, 1)), "missing month"),
        (lambda df: df.with_columns(pl.col("ds").dt.offset_by("1d")), "first day of the month"),
        (lambda df: df.with_columns(pl.lit(float("nan")).alias("y")), "non-finite"),
    ],
)
def test_validate_panel_says_what_is_wrong(mutate, needle):
    with pytest.raises(PanelError, match=needle):
        validate_panel(mutate(_panel()), ["famille"])


def test_gaps_allowed_when_asked():
    df = _panel().filter(pl.col("ds") != date(2020, 2, 1))
    validate_panel(df, ["famille"], allow_gaps=True)


def test_roundtrip_keeps_metadata(tmp_path):
    meta = PanelMeta(hierarchy=("famille",), measure="presented", basis="care", source="test")
    write_panel(_panel(), tmp_path / "p.parquet", meta)
    df, back = read_panel(tmp_path / "p.parquet")
    assert back == meta
    assert df.equals(_panel().sort("famille", "ds"))


def test_failed_write_leaves_target_untouched(tmp_path):
    target = tmp_path / "p.parquet"
    target.write_bytes(b"old")
    with pytest.raises(PanelError):
        write_panel(_panel().drop("y"), target, PanelMeta(hierarchy=("famille",)))
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["p.parquet"]


@given(st.lists(st.integers(0, 30), min_size=1, max_size=20, unique=True))
def test_gaps_are_found_exactly(offsets):
    months = sorted(offsets)
    ds = [date(2000 + m // 12, m % 12 + 1, 1) for m in months]
    df = pl.DataFrame({"famille": ["x"] * len(ds), "ds": ds, "y": [1.0] * len(ds)})
    expected_gaps = (months[-1] - months[0] + 1) - len(months)
    if expected_gaps:
        with pytest.raises(PanelError, match=f"{expected_gaps} missing month"):
            validate_panel(df, ["famille"])
    else:
        validate_panel(df, ["famille"])
