"""Candidates, degenerate-series rules and ensembles."""

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from forecasting.training.config import CANDIDATES
from forecasting.training.models import (
    EXOGENOUS,
    MIN_LENGTH,
    add_ensembles,
    candidate_groups,
    degenerate_forecast,
    degenerate_reasons,
    ensemble_alias,
    fallback_rule,
    make_model,
)


@pytest.mark.parametrize("alias", CANDIDATES)
def test_every_candidate_has_its_alias(alias: str) -> None:
    assert str(make_model(alias)) == alias


def test_unknown_alias() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        make_model("Prophet")


def _series(uid: str, values: list[float]) -> pl.DataFrame:
    ds = pl.date_range(dt.date(2010, 1, 1), dt.date(2040, 1, 1), "1mo", eager=True)
    return pl.DataFrame({"unique_id": uid, "ds": ds[: len(values)], "y": values})


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ([0.0] * 60, "all_zero"),
        ([7.5] * 60, "constant"),
        (list(np.arange(20.0)), "short: 20 months < 25"),
        (list(np.arange(24.0) % 12 + 1), "short: 24 months < 25"),
        (list(np.arange(25.0) % 12 + 1), None),
        (list(np.arange(60.0) % 12 + 1), None),
    ],
)
def test_degenerate_rules(values: list[float], reason: str | None) -> None:
    out = degenerate_reasons(_series("total/x", values), MIN_LENGTH)
    assert (out["reason"].to_list() or [None])[0] == reason


def test_ensembles_use_each_series_top_k() -> None:
    cv = pl.DataFrame(
        {
            "unique_id": ["a", "a", "b"],
            "A": [1.0, 2.0, 10.0],
            "B": [3.0, 4.0, 20.0],
            "C": [5.0, 9.0, 60.0],
        }
    )
    ranks = pl.DataFrame(
        {
            "unique_id": ["a"] * 3 + ["b"] * 3,
            "model": ["A", "B", "C"] * 2,
            "rank": [1, 2, 3, 3, 1, 2],
        }
    )
    out = add_ensembles(cv, ranks, ["A", "B", "C"], ["mean", "median"], 2)
    assert out[ensemble_alias("mean")].to_list() == [2.0, 3.0, 40.0]
    assert out[ensemble_alias("median")].to_list() == [2.0, 3.0, 40.0]
    out3 = add_ensembles(cv, ranks, ["A", "B", "C"], ["median"], 3)
    assert out3[ensemble_alias("median")].to_list() == [3.0, 4.0, 20.0]


@pytest.mark.parametrize(
    ("reason", "n_obs", "model"),
    [
        ("all_zero", 60, "Naive"),
        ("constant", 60, "Naive"),
        ("short: 8 months < 42", 8, "Naive"),
        ("short: 11 months < 42", 11, "Naive"),
        ("short: 12 months < 42", 12, "SeasonalNaive"),
        ("short: 20 months < 42", 20, "SeasonalNaive"),
    ],
)
def test_fallback_label_names_the_forecast(reason: str, n_obs: int, model: str) -> None:
    assert fallback_rule(reason, n_obs) == model
    y = np.arange(1.0, n_obs + 1)
    mean, _, _ = degenerate_forecast(y, reason, 14, [80])
    if reason.startswith("short"):
        lag = 12 if model == "SeasonalNaive" else 1
        assert mean.tolist() == [y[n_obs - lag + j % lag] for j in range(14)]


@given(st.permutations(["AutoETS", "AutoTheta", "AutoCES", "SeasonalNaive", "AutoARIMA"]))
def test_candidate_groups_fit_each_candidate_once_exogenous_ones_alone(aliases) -> None:
    """Every candidate in exactly one group, order kept; the exogenous ones alone."""
    groups = candidate_groups(aliases)
    flat = [a for g in groups for a in g]
    assert sorted(flat) == sorted(aliases)
    assert [a for a in aliases if a not in EXOGENOUS] == [a for a in flat if a not in EXOGENOUS]
    for g in groups:
        assert len(g) == 1 or not any(a in EXOGENOUS for a in g)
    assert sum(1 for g in groups if not any(a in EXOGENOUS for a in g)) <= 1
