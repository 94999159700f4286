"""Legacy tables: month from the name, columns by (any-case) header name, measures."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from forecasting.data import legacy_tables
from forecasting.errors import InputError

HEADER = "SERIE;prs_nat;Sns_Date;rec_mon;rem_mon;dep_mon;act_dnb;cpam;dpt;region"


def _file(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("name", "want"), [("N202401.CSV", (2024, 1)), ("r199912.csv", (1999, 12))]
)
def test_file_month(name: str, want: tuple[int, int]) -> None:
    assert legacy_tables.file_month(Path(name)) == want


@pytest.mark.parametrize("name", ["N202413.CSV", "X202401.CSV", "N2024.CSV"])
def test_file_month_bad(name: str) -> None:
    with pytest.raises(InputError, match="N\\{YYYYMM\\}"):
        legacy_tables.file_month(Path(name))


@pytest.mark.parametrize(
    ("basis", "measure", "want"),
    [
        ("flux", "reimbursed", {"2024-03": 30.0}),
        ("flux", "presented", {"2024-03": 40.0}),
        ("care", "acts", {"2024-02": 1.0, "2024-03": 2.0}),
    ],
)
def test_region_file_measures(
    tmp_path: Path, basis: str, measure: str, want: dict[str, float]
) -> None:
    f = _file(
        tmp_path / "R202403.CSV",
        ["111111;1111;202402;10;5;0;1;751;75;11", "111111;1111;202403;30;25;0;2;751;75;11"],
    )
    part, stats = legacy_tables.aggregate_file(f, basis=basis, measure=measure)
    sums = part.group_by("ds").agg(pl.col("y").sum())
    got = {d.strftime("%Y-%m"): float(y) for d, y in sums.iter_rows()}
    assert got == want and stats.rows == 2
    assert set(part.columns) >= {"famille", "serie", "ds", "y"}


def test_missing_column_named(tmp_path: Path) -> None:
    f = tmp_path / "N202401.CSV"
    f.write_text("serie;rec_mon\n111111;3\n")
    with pytest.raises(InputError, match="missing column.*rem_mon") as err:
        legacy_tables.aggregate_file(f)
    assert err.value.line == 1 and err.value.column == "rem_mon"
