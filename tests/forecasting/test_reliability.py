"""Budget probabilities, Brier score and reliability table on seeded draws."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from forecasting.reliability import (
    brier_score,
    budget_probabilities,
    climatology_brier,
    plot_reliability,
    reliability_table,
)

N_FORECASTS, N_PATHS, K = 3000, 400, 5
QLO, QHI = 0.02, 0.98


def _draws(spread: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and outcomes: truth ~ N(mu, 1), paths ~ N(mu, spread^2)."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(100.0, 10.0, N_FORECASTS)
    totals = mu[:, None] + spread * rng.standard_normal((N_FORECASTS, N_PATHS))
    actual = mu + rng.standard_normal(N_FORECASTS)
    q = rng.uniform(QLO, QHI, (N_FORECASTS, K))
    return budget_probabilities(totals, actual, q)


def test_calibrated_draws_lie_on_the_diagonal() -> None:
    p, outcome = _draws(spread=1.0)
    table = reliability_table(p, outcome, bins=10)
    full = table.count >= 200
    assert full.sum() >= 8
    assert np.all(np.abs(table.observed[full] - table.mean_forecast[full]) < 0.06)
    assert np.all(table.mean_forecast[full] >= table.lower[full])
    assert np.all(table.mean_forecast[full] <= table.upper[full])
    # p ~ U(a, b) and outcome ~ Bernoulli(p): E[(p - o)^2] = E[p (1 - p)]
    expected = (QLO + QHI) / 2 - (QLO**2 + QLO * QHI + QHI**2) / 3
    assert brier_score(p, outcome) == pytest.approx(expected, abs=0.008)
    assert brier_score(p, outcome) < climatology_brier(outcome)


def test_too_narrow_distribution_is_detected_at_the_extremes() -> None:
    p, outcome = _draws(spread=0.4)
    table = reliability_table(p, outcome, bins=10)
    low, high = table.observed[0], table.observed[-1]
    assert table.count[0] > 100 and table.count[-1] > 100
    # budgets the paths call nearly certain to be exceeded (or not) are missed far more often
    assert low - table.mean_forecast[0] > 0.15
    assert table.mean_forecast[-1] - high > 0.15
    calibrated_p, calibrated_o = _draws(spread=1.0)
    assert brier_score(p, outcome) > brier_score(calibrated_p, calibrated_o) + 0.01


def test_budget_at_a_quantile_gives_its_complement() -> None:
    totals = np.arange(1.0, 101.0)  # 100 paths: 1..100
    p, outcome = budget_probabilities(totals, np.array(50.5), np.array([0.0, 0.5, 1.0]))
    assert p.tolist() == pytest.approx([0.99, 0.5, 0.0])
    assert outcome.tolist() == [True, False, False]


@pytest.mark.parametrize(
    ("totals", "actual", "quantiles", "message"),
    [
        (np.ones((3, 0)), np.ones(3), np.array([0.5]), "at least one path"),
        (np.ones((3, 4)), np.ones(2), np.array([0.5]), "actual has shape"),
        (np.ones((3, 4)), np.ones(3), np.ones((2, 1)) / 2, "quantiles have shape"),
        (np.full((3, 4), np.nan), np.ones(3), np.array([0.5]), "finite"),
        (np.ones((3, 4)), np.ones(3), np.array([1.5]), r"\[0, 1\]"),
    ],
)
def test_budget_probabilities_rejects_bad_input(
    totals: np.ndarray, actual: np.ndarray, quantiles: np.ndarray, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        budget_probabilities(totals, actual, quantiles)


@pytest.mark.parametrize(
    ("p", "outcome", "message"),
    [
        (np.array([]), np.array([]), "no forecasts"),
        (np.array([0.5, 0.2]), np.array([1]), "values"),
        (np.array([1.2]), np.array([1]), r"\[0, 1\]"),
        (np.array([0.5]), np.array([2]), "0/1"),
    ],
)
def test_brier_score_rejects_bad_input(p: np.ndarray, outcome: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        brier_score(p, outcome)


@settings(max_examples=60, deadline=None)
@given(
    totals=hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 12), st.integers(1, 40)),
        elements=st.floats(-1e6, 1e6, allow_nan=False),
    ),
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(1, 6),
    bins=st.integers(1, 20),
)
def test_invariants(totals: np.ndarray, seed: int, k: int, bins: int) -> None:
    rng = np.random.default_rng(seed)
    actual = rng.choice(totals.ravel(), totals.shape[0]) + rng.normal(0, 1, totals.shape[0])
    q = rng.uniform(0, 1, (totals.shape[0], k))
    p, outcome = budget_probabilities(totals, actual, q)
    assert p.shape == outcome.shape == (totals.shape[0], k)
    assert ((p >= 0) & (p <= 1)).all()
    assert outcome.dtype == np.bool_
    table = reliability_table(p, outcome, bins=bins)
    assert table.count.sum() == p.size
    seen = table.count > 0
    assert ((table.observed[seen] >= 0) & (table.observed[seen] <= 1)).all()
    assert (table.mean_forecast[seen] >= table.lower[seen] - 1e-12).all()
    assert (table.mean_forecast[seen] <= table.upper[seen] + 1e-12).all()
    assert 0.0 <= brier_score(p, outcome) <= 1.0
    assert 0.0 <= climatology_brier(outcome) <= 0.25
    assert len(table.rows()) == bins


def test_plot_writes_a_png(tmp_path: Path) -> None:
    p, outcome = _draws(spread=1.0, seed=1)
    out = plot_reliability(reliability_table(p, outcome), tmp_path / "sub" / "rel.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
