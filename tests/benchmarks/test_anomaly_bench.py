"""Smoke test of benchmarks/anomaly.py: a real (tiny) run, and the injection's invariants."""

from __future__ import annotations

import datetime as dt
import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_anomaly", ROOT / "benchmarks" / "anomaly.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_anomaly"] = mod
    spec.loader.exec_module(mod)
    return mod


bench = _load()


def _holdout(n_series: int, months: int = 12) -> pl.DataFrame:
    ds = pl.date_range(dt.date(2020, 1, 1), dt.date(2020, months, 1), "1mo", eager=True)
    return pl.concat(
        pl.DataFrame({"unique_id": f"s{i}", "ds": ds, "y": [100.0 + i + m for m in range(months)]})
        for i in range(n_series)
    )


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 30),
    frac=st.floats(0.0, 1.0),
    seed=st.integers(0, 10_000),
)
def test_inject_invariants(n: int, frac: float, seed: int) -> None:
    clean = _holdout(n)
    units = {f"s{i}": 1.0 + i for i in range(n)}
    sizes = [2.0, 3.0, 4.0, 6.0]
    obs = bench.inject(clean, units, frac=frac, sizes=sizes, seed=seed)
    assert obs.height == clean.height
    injected = obs.filter(pl.col("kind").is_not_null())
    assert injected["unique_id"].n_unique() == int(round(frac * n))
    diff = obs.with_columns((pl.col("y") - pl.col("y_clean")).alias("d"))
    # untouched months are exactly the clean values; anomalous ones move by size * unit
    assert (diff.filter(~pl.col("truth"))["d"] == 0).all()
    for uid, part in diff.filter(pl.col("kind").is_not_null()).group_by("unique_id"):
        kind, size = part["kind"][0], part["size"][0]
        hits = part.filter(pl.col("truth")).sort("m")
        moved = (hits["d"].abs() - size * units[str(uid[0])]).abs().max()
        assert moved is not None and float(moved) < 1e-9  # type: ignore[arg-type]
        if kind == "shift":
            assert hits["m"].to_list() == list(range(hits["m"][0], 13))
            assert hits["m"][0] <= bench.SHIFT_LAST_START
            assert hits["d"].sign().n_unique() == 1
        else:
            assert hits.height == 1
            assert (hits["d"] > 0).all() == (kind == "spike")
    # same seed, same injection
    again = bench.inject(clean, units, frac=frac, sizes=sizes, seed=seed)
    assert again.equals(obs)


def test_score_counts() -> None:
    obs = bench.inject(_holdout(6), {f"s{i}": 1.0 for i in range(6)}, frac=0.5, sizes=[4.0], seed=3)
    perfect = bench.score(obs, obs.select("unique_id", "ds", pl.col("truth").alias("flag")))
    assert perfect.fp == perfect.fn == perfect.clean_flags == 0
    assert perfect.precision == perfect.recall == perfect.f1 == 1.0
    assert perfect.events == perfect.events_caught == 3
    assert perfect.shift_delays == [0]
    everything = bench.score(obs, obs.select("unique_id", "ds", pl.lit(True).alias("flag")))
    assert everything.false_alarm == 1.0
    assert everything.tp + everything.fp == obs.height
    assert everything.clean_months == 3 * 12


def test_benchmark_runs_on_a_small_generated_panel(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--n-fam", "2", "--n-exe", "3", "--months", "72", "--frac", "0.5", "--seed", "1"]
    res = bench.run(argv)
    assert res.n_series + res.excluded == 6
    assert res.n_injected == 3
    assert "stored" in res.mode or "UNCONDITIONED" in res.mode
    truth_months = None
    for (_method, level), c in res.counts.items():
        assert level in (95, 99)
        for rate in (c.precision, c.recall, c.false_alarm):
            assert math.isnan(rate) or 0.0 <= rate <= 1.0
        assert 0.0 <= c.f1 <= 1.0
        # every method is scored on the same truth: anomalous months and clean months agree
        months = (c.tp + c.fn, c.clean_months)
        truth_months = truth_months or months
        assert months == truth_months
        assert sum(tot for _, tot in c.cells.values()) == c.tp + c.fn
        assert sum(hit for hit, _ in c.cells.values()) == c.tp
        assert 0 <= c.persistent_flags <= c.clean_flags
        assert c.persistent_months <= c.clean_months
        assert c.events == 3 and 0 <= c.events_caught <= c.events
        assert all(0 <= d < 12 for d in c.shift_delays)
    assert truth_months is not None and truth_months[1] == 3 * 12
    assert len(res.goals()) == 3
    assert res.sigma_ratio > 0
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    assert "false alarms" in out and "IsolationForest" in out and "peak memory" in out
