"""The ecosystem's long format (unique_id, ds, y) and any column name as a hierarchy level."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from cli.main import app
from forecasting.data.ingest import ingest
from forecasting.data.panel import read_panel
from forecasting.errors import InputError
from tests.forecasting.data.test_ingest import od_row, write_od

runner = CliRunner()


def long_frame(
    ids: tuple[str, ...] = ("airline", "beds", "cost"), months: int = 36
) -> pl.DataFrame:
    """Unrelated series of different scales, in statsforecast's long format."""
    rng = np.random.default_rng(0)
    ds = pl.date_range(pl.date(2020, 1, 1), pl.date(2040, 1, 1), "1mo", eager=True)[:months]
    return pl.concat(
        pl.DataFrame(
            {"unique_id": uid, "ds": ds, "y": rng.uniform(1, 2, months) * 10 ** (2 * i + 1)}
        )
        for i, uid in enumerate(ids)
    )


def _cli(*args: str) -> str:
    result = runner.invoke(app, ["ingest", *args])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_long_format_needs_no_flag_and_is_flat(tmp_path: Path, suffix: str) -> None:
    src = tmp_path / f"series{suffix}"
    frame = long_frame()
    if suffix == ".csv":
        frame.write_csv(src)
    else:
        frame.write_parquet(src)
    out = tmp_path / "p.parquet"
    text = _cli(str(src), "--out", str(out))
    assert "long format unique_id, ds, y" in text and "flat" in text
    assert "no counts" in text  # the privacy rule cannot apply, and it says so
    panel, meta = read_panel(out)
    assert meta.hierarchy == ("unique_id",) and meta.flat and meta.measure == "value"
    assert sorted(panel["unique_id"].unique()) == ["airline", "beds", "cost"]
    report = json.loads(out.with_name("p.report.json").read_text())
    assert report["flat"] is True and report["measure"] == "value"
    assert "reimbursed" not in json.dumps(report) and "reimbursed" not in text


def test_unique_id_as_a_level_with_hierarchy(tmp_path: Path) -> None:
    """--hierarchy unique_id (refused before: 'does not start at the root') is a level."""
    src = tmp_path / "s.csv"
    frame = long_frame().with_columns(
        pl.when(pl.col("unique_id") == "cost")
        .then(pl.lit("money"))
        .otherwise(pl.lit("care"))
        .alias("region")
    )
    frame.write_csv(src)
    out = tmp_path / "p.parquet"
    _cli(str(src), "--out", str(out), "--hierarchy", "region,unique_id", "--measure", "euros")
    panel, meta = read_panel(out)
    assert meta.hierarchy == ("region", "unique_id") and not meta.flat
    assert meta.measure == "euros"
    _cli(str(src), "--out", str(out), "--hierarchy", "unique_id")
    assert read_panel(out)[1].flat is False  # a hierarchy given: not flat unless --flat


def test_named_columns_and_explicit_flat(tmp_path: Path) -> None:
    src = tmp_path / "s.csv"
    long_frame().rename({"unique_id": "kind", "ds": "Month", "y": "Beds"}).write_csv(src)
    out = tmp_path / "p.parquet"
    text = _cli(str(src), "--out", str(out), "--date-col", "Month", "--hierarchy", "kind",
                "--value-col", "Beds", "--flat")  # fmt: skip
    assert "tidy table" in text
    meta = read_panel(out)[1]
    assert meta.flat and meta.measure == "Beds"


@pytest.mark.parametrize(
    ("frame", "args", "expect"),
    [
        (
            long_frame().with_columns(pl.lit("r").alias("reg")),
            ["--hierarchy", "reg,unique_id", "--flat"],
            "--flat needs one hierarchy level",
        ),  # fmt: skip
        (long_frame(("a/b", "c")), [], "holds '/'"),
        (long_frame().rename({"ds": "when"}), [], "--date-col"),
        (
            long_frame().with_columns(pl.col("y").alias("v")),
            ["--value-col", "v", "--hierarchy", "y"],
            "cannot be a hierarchy level",
        ),  # fmt: skip
    ],
)
def test_bad_long_files_name_what_to_fix(
    tmp_path: Path, frame: pl.DataFrame, args: list[str], expect: str
) -> None:
    src = tmp_path / "s.csv"
    frame.write_csv(src)
    out = tmp_path / "p.parquet"
    result = runner.invoke(app, ["ingest", str(src), "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    assert expect in " ".join(result.output.split())
    assert not out.exists()


def test_count_column_pools_a_tidy_file(tmp_path: Path) -> None:
    """--count-col: a tidy file's small series go to autres; totals unchanged."""
    frame = long_frame(("a", "b", "c")).with_columns(
        pl.lit("g").alias("grp"),
        pl.when(pl.col("unique_id") == "c").then(3).otherwise(500).alias("persons"),
    )
    src = tmp_path / "s.parquet"
    frame.write_parquet(src)
    out = tmp_path / "p.parquet"
    report = ingest([src], out, hierarchy="grp,unique_id", count_col="persons", min_cell=10)
    panel, meta = read_panel(out)
    assert meta.count == "'persons' column" and meta.min_cell == 10
    assert sorted(panel["unique_id"].unique()) == ["autres", "b"]  # c (3) joined by a (a tie)
    assert min(meta.min_counts.values()) >= 10
    assert [p["series"] for p in report.privacy["pooled"]] == ["total/g/a", "total/g/c"]
    assert panel["y"].sum() == pytest.approx(frame["y"].sum())
    (tmp_path / "od").mkdir()
    write_od(tmp_path / "od" / "A202401.csv.gz", [od_row()])
    with pytest.raises(InputError, match="--count-col is for tidy files"):
        ingest([tmp_path / "od"], out, count_col="x")
