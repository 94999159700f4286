"""No small cells: pooling into autres, on hand-made panels, random ones and generated files."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forecasting.data import synth
from forecasting.data.ingest import ingest
from forecasting.data.panel import COUNT_COL, read_panel, triangle_path
from forecasting.data.privacy import minimums, pool_small_cells, series_minimums
from forecasting.errors import InputError

LEVELS = ("famille", "executant")
MONTHS = [dt.date(2020, m, 1) for m in (1, 2, 3)]


def panel_of(series: dict[tuple[str, str], list[int]]) -> pl.DataFrame:
    """A bottom panel whose amount is 2 euros an act."""
    rows = [
        (f, e, d, 2.0 * c, c)
        for (f, e), counts in series.items()
        for d, c in zip(MONTHS, counts, strict=True)
    ]
    schema = {
        "famille": pl.String,
        "executant": pl.String,
        "ds": pl.Date,
        "y": pl.Float64,
        COUNT_COL: pl.Int64,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def small_cells(panel: pl.DataFrame, levels: tuple[str, ...], threshold: int) -> list[str]:
    """Ids (every level) with a live cell under the threshold."""
    return [k for k, n in series_minimums(panel, levels).items() if n < threshold]


def test_pooling_next_smallest_and_collapse() -> None:
    panel = panel_of(
        {
            ("A", "big"): [100, 100, 100],
            ("A", "tiny"): [3, 3, 3],
            ("A", "small"): [5, 50, 50],
            ("A", "mid"): [20, 20, 20],
            ("B", "b1"): [40, 40, 40],
            ("B", "b2"): [4, 4, 4],  # b2 + b1 = the whole of B: the level collapses
        }
    )
    out, pooling = pool_small_cells(panel, LEVELS, 10)
    kept = sorted(out.select(LEVELS).unique().rows())
    # tiny + small make 8 in January: mid (the next smallest, 20) joins; big stays
    assert kept == [("A", "autres"), ("A", "big"), ("B", "autres")]
    assert pooling.collapsed == ["total/B"]
    why = {p["series"]: p["why"] for p in pooling.pooled}
    assert why["total/A/tiny"] == "3 act(s) in 2020-01, fewer than 10"
    assert "joined autres" in why["total/A/mid"] and "joined autres" in why["total/B/b1"]
    assert not small_cells(out, LEVELS, 10)
    assert (
        out.group_by("ds")
        .agg(pl.col("y").sum())
        .sort("ds")
        .equals(panel.group_by("ds").agg(pl.col("y").sum()).sort("ds"))
    )


def test_flat_panel_leaves_small_series_out_and_empty_cells_are_not_small() -> None:
    panel = panel_of({("g", "a"): [50, 0, 50], ("g", "b"): [2, 2, 2]}).with_columns(
        pl.when(pl.col(COUNT_COL) == 0).then(0.0).otherwise(pl.col("y")).alias("y")
    )
    out, pooling = pool_small_cells(panel.drop("famille"), ("executant",), 10, flat=True)
    assert out["executant"].unique().to_list() == ["a"]  # a's empty February is not small
    assert pooling.pooled[0]["into"] is None and "left out" in pooling.pooled[0]["why"]


def test_a_small_total_cannot_be_published() -> None:
    with pytest.raises(InputError, match="the total itself has 5"):
        pool_small_cells(panel_of({("A", "a"): [5, 100, 100]}), LEVELS, 10)


cells = st.lists(st.integers(0, 40), min_size=3, max_size=3)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    series=st.dictionaries(
        st.tuples(st.sampled_from("ABC"), st.sampled_from(["x", "y", "z", "autres"])),
        cells,
        min_size=1,
        max_size=10,
    ),
    threshold=st.integers(1, 60),
)
def test_no_small_cell_at_any_level_and_totals_unchanged(
    series: dict[tuple[str, str], list[int]], threshold: int
) -> None:
    panel = panel_of(series)
    total = minimums(panel.with_columns(pl.lit("t").alias("r")), ["r"])
    try:
        out, _ = pool_small_cells(panel, LEVELS, threshold)
    except InputError:  # only when the total itself is small
        assert total.height and total["min_count"][0] < threshold
        return
    assert not small_cells(out, LEVELS, threshold)
    monthly = [
        f.group_by("ds").agg(pl.col("y").sum(), pl.col(COUNT_COL).sum()).sort("ds")
        for f in (panel, out)
    ]
    assert monthly[0].equals(monthly[1])
    # each famille that stayed keeps its amount (pooling below it does not move it)
    fam = [f.group_by("famille").agg(pl.col("y").sum()) for f in (panel, out)]
    kept = fam[1].filter(pl.col("famille") != "autres").join(fam[0], on="famille", how="left")
    assert (kept["y"] == kept["y_right"]).all()


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = tmp_path_factory.mktemp("privacy") / "raw"
    synth.generate(raw, start="2023-01", end="2023-12", rows_per_month=2000, seed=1)
    return raw


@pytest.mark.parametrize("basis", ["flux", "care"])
def test_generated_files_prescriber_hierarchy(generated: Path, tmp_path: Path, basis: str) -> None:
    """Real Open DAMIR-layout files: prescribers make small cells; none is left."""
    out = tmp_path / "p.parquet"
    report = ingest([generated], out, hierarchy="prescriber", basis=basis)
    raw = ingest([generated], tmp_path / "raw.parquet", hierarchy="prescriber", basis=basis,
                 min_cell=0)  # fmt: skip
    panel, meta = read_panel(out)
    assert report.privacy["pooled"], "the generated prescribers have small cells"
    assert meta.count == "acts (FLT_ACT_QTE)" and meta.min_cell == 10
    assert min(meta.min_counts.values()) >= 10
    assert not small_cells(panel, meta.hierarchy, 10)
    assert report.totals == raw.totals  # every month's total unchanged
    saved: dict[str, Any] = json.loads(out.with_name("p.report.json").read_text())
    assert saved["privacy"]["pooled"] == report.privacy["pooled"]
    if basis == "care":  # the triangle is pooled alike: its series are the panel's
        tri = pl.read_parquet(triangle_path(out))
        assert set(tri.select(meta.hierarchy).unique().rows()) <= set(
            panel.select(meta.hierarchy).unique().rows()
        )
        raw_tri = pl.read_parquet(triangle_path(tmp_path / "raw.parquet"))
        assert tri["y"].sum() == pytest.approx(raw_tri["y"].sum())
