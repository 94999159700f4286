"""Tidy tables: month formats, duplicates, gaps, parquet input."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from forecasting.data import tidy
from forecasting.errors import InputError


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("2024-03", dt.date(2024, 3, 1)),
        ("2024-03-31", dt.date(2024, 3, 1)),
        ("1991 Jul", dt.date(1991, 7, 1)),
        (" 2001 Dec ", dt.date(2001, 12, 1)),
        ("2024-13", None),
        ("March 2024", None),
    ],
)
def test_parse_month(text: str, want: dt.date | None) -> None:
    assert pl.DataFrame({"m": [text]}).select(tidy.parse_month("m")).item() == want


def test_parquet_and_fill(tmp_path: Path) -> None:
    f = tmp_path / "t.parquet"
    pl.DataFrame(
        {"when": ["2024-01", "2024-04"], "a": ["x", "x"], "b": ["y", "y"], "cost": [1.5, 2.0]}
    ).write_parquet(f)
    panel, layout, filled = tidy.read_tidy(
        f, date_col="when", value_col="cost", hierarchy="a,b", fill_missing="zero"
    )
    assert layout.levels == ("a", "b") and filled == 2 and not layout.long_format
    assert panel.sort("ds")["y"].to_list() == [1.5, 0.0, 0.0, 2.0]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("m,s,v\n2024-01,a,1\n2024-01,a,1\n", "share a"),
        ("m,s,v\n2024-01,a,1\n2024-03,a,1\n", "--fill-missing zero"),
        ("m,s,v\nsoon,a,1\n", "as a month"),
        ("m,v\n2024-01,1\n", "missing column"),
    ],
)
def test_errors(tmp_path: Path, text: str, match: str) -> None:
    f = tmp_path / "t.csv"
    f.write_text(text)
    with pytest.raises(InputError, match=match):
        tidy.read_tidy(f, date_col="m", value_col="v", hierarchy="s")


def test_options_required(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text("m,s,v\n2024-01,a,1\n")
    with pytest.raises(InputError, match="--value-col"):
        tidy.read_tidy(f, date_col="m", value_col=None, hierarchy="s")
