"""Rolling-origin backtest and scoring; the backtest plan and the persistence of errors."""

import datetime as dt
from statistics import NormalDist

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from forecasting.training.backtest import (
    GROWTH_MAX,
    backtest_plan,
    disjoint_windows,
    extend_profile,
    horizon_profile,
    rank_models,
    residual_matrix,
    score,
)
from forecasting.training.engines import run_cv
from forecasting.training.hierarchy import aggregate_panel
from forecasting.training.intervals import Calibration
from forecasting.training.paths import (
    NU_MIN,
    Spread,
    sample_paths,
    spread,
    window_sd,
    window_sums,
)
from tests.panels import make_panel


def test_cv_windows_and_scores() -> None:
    panel, meta = make_panel(n_fam=1, n_exe=2, months=48)
    y, _ = aggregate_panel(panel, meta)
    cv, secs = run_cv(y, ("SeasonalNaive",), horizon=4, windows=3, step=2, levels=[80])
    assert secs >= 0
    assert cv["cutoff"].n_unique() == 3
    assert cv.group_by("unique_id", "cutoff").len()["len"].unique().to_list() == [4]
    assert {"SeasonalNaive-lo-80", "SeasonalNaive-hi-80"} <= set(cv.columns)
    sc = score(cv, ["SeasonalNaive"], y)
    assert sc.columns == ["unique_id", "model", "mase", "smape", "rmsse", "bias"]
    assert sc.height == y["unique_id"].n_unique()
    assert (sc["mase"] > 0).all() and (sc["smape"] <= 1).all()
    # bias is the mean error (forecast - actual) over the windows
    row = cv.filter(pl.col("unique_id") == "total")
    assert sc.filter(pl.col("unique_id") == "total")["bias"][0] == pytest.approx(
        (row["SeasonalNaive"] - row["y"]).to_numpy().mean()
    )


def test_rank_puts_nan_last() -> None:
    sc = pl.DataFrame(
        {"unique_id": ["a"] * 3, "model": ["X", "Y", "Z"], "mase": [0.5, float("nan"), 0.2]}
    )
    ranks = rank_models(sc, "mase").sort("rank")
    assert ranks["model"].to_list() == ["Z", "X", "Y"]


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (24, None),
        (25, (1, 1)),
        (30, (6, 1)),
        (36, (12, 1)),
        (40, (12, 5)),
        (60, (12, 13)),
        (100, (12, 25)),
    ],
)
def test_backtest_plan_gives_short_series_a_backtest(n: int, expected: tuple | None) -> None:
    # a 60-month series is first fitted on 36 months (60 %), not 24: 13 windows, not 25
    plan = backtest_plan({"a": n, "long": 200}, horizon=12, windows=25, step=1)
    got = next((k for k, ids in plan.items() if "a" in ids), None)
    assert got == expected
    assert plan[(12, 25)][-1] == "long"


def _cv_windows(cutoffs: list[int], h: int) -> pl.DataFrame:
    """Backtest rows of one series: a window of ``h`` months after each cutoff month."""
    start = dt.date(2010, 1, 1)
    month = lambda i: dt.date(start.year + i // 12, i % 12 + 1, 1)  # noqa: E731
    rows = [(month(c), month(c + k)) for c in cutoffs for k in range(1, h + 1)]
    return pl.DataFrame(
        {"unique_id": "s", "cutoff": [r[0] for r in rows], "ds": [r[1] for r in rows]}
    )


@given(n=st.integers(1, 30), step=st.integers(1, 6), h=st.integers(1, 18))
def test_disjoint_windows_of_a_regular_backtest(n: int, step: int, h: int) -> None:
    """``n`` cutoffs ``step`` months apart, windows of ``h`` months: a window shares no month
    with the one ``ceil(h / step)`` cutoffs later, so ``(n - 1) // ceil(h / step) + 1`` of
    them are disjoint."""
    cv = _cv_windows(list(range(0, step * n, step)), h)
    assert disjoint_windows(cv) == {"s": (n - 1) // -(-h // step) + 1}


def test_overlapping_windows_count_as_little_evidence() -> None:
    # five years forecast 18 months ahead: 7 cutoffs a month apart, one window of evidence
    assert disjoint_windows(_cv_windows(list(range(7)), 18)) == {"s": 1}
    assert disjoint_windows(_cv_windows(list(range(25)), 12)) == {"s": 3}
    assert disjoint_windows(_cv_windows([0, 12], 12)) == {"s": 2}


@given(
    b=st.floats(0.0, GROWTH_MAX),
    measured=st.integers(2, 11),
    horizon=st.integers(12, 24),
)
def test_a_measured_power_growth_continues_to_the_horizon(
    b: float, measured: int, horizon: int
) -> None:
    """Every series short, the backtest measures a few steps; the rest of the horizon keeps
    the measured growth (a power of the step), so the half-widths cover the whole horizon."""
    g = np.arange(1, measured + 1) ** b
    out = extend_profile(g, horizon)
    assert out.size == horizon
    np.testing.assert_allclose(out, np.arange(1, horizon + 1) ** b, rtol=1e-9)


@given(
    g=st.lists(st.floats(0.5, 3.0), min_size=1, max_size=11).map(
        lambda v: np.maximum.accumulate(np.array(v))
    ),
    horizon=st.integers(1, 24),
)
def test_an_extended_profile_grows_but_never_faster_than_a_random_walk(
    g: np.ndarray, horizon: int
) -> None:
    out = extend_profile(g, horizon)
    assert out.size == max(horizon, g.size)
    np.testing.assert_array_equal(out[: g.size], g)  # the measured steps are kept
    assert np.all(np.diff(out) >= -1e-12)
    k = np.arange(g.size + 1, out.size + 1)
    assert np.all(out[g.size :] <= g[-1] * (k / g.size) ** GROWTH_MAX * (1 + 1e-9))


def test_one_measured_step_grows_like_a_random_walk() -> None:
    np.testing.assert_allclose(extend_profile(np.ones(1), 4), np.sqrt([1, 2, 3, 4]))


def test_the_profile_of_a_capped_backtest_covers_the_horizon() -> None:
    bt = pl.DataFrame(
        {
            "unique_id": ["a"] * 6,
            "ds": [dt.date(2020, m, 1) for m in range(1, 7)],
            "cutoff": [dt.date(2019, 12, 1)] * 6,
            "h": list(range(1, 7)),
            "y": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            "yhat": [0.0] * 6,
        }
    )
    assert horizon_profile(bt).size == 6
    g = horizon_profile(bt, 12)
    assert g.size == 12 and g.mean() == pytest.approx(1.0)
    assert np.all(np.diff(g) > 0)  # errors 1..6 keep growing after the sixth step


def _ar1_backtest(
    phi: float, n_series: int = 40, n_windows: int = 30, h: int = 12, nu: float | None = None
) -> pl.DataFrame:
    """Unit-step AR(1) errors; with ``nu``, each window's errors scaled by ``sqrt(nu/chi2_nu)``
    times the constant that keeps a 90 % band (heavy-tailed window sums)."""
    rng = np.random.default_rng(7)
    mix = Spread(nu=nu)
    rows = []
    for s in range(n_series):
        for w in range(n_windows):
            cutoff = dt.date(2000, 1, 1) + dt.timedelta(days=31 * w)
            z = np.empty(h)
            z[0] = rng.standard_normal()
            for t in range(1, h):
                z[t] = phi * z[t - 1] + np.sqrt(1 - phi**2) * rng.standard_normal()
            z *= mix.multipliers(rng, (1,))[0]
            rows += [
                {
                    "unique_id": f"s{s}",
                    "ds": cutoff,
                    "cutoff": cutoff,
                    "h": t + 1,
                    "y": z[t],
                    "yhat": 0.0,
                }
                for t in range(h)
            ]
    return pl.DataFrame(rows)


def _unit_calibration(ids: list[str]) -> Calibration:
    return Calibration(
        profile=np.ones(12),
        quantiles={80: NormalDist().inv_cdf(0.9)},
        scales=dict.fromkeys(ids, 1.0),
        early=dict.fromkeys(ids, 1.0),
        split=dict.fromkeys(ids, dt.date(1999, 1, 1)),
    )


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9])
def test_persistence_recovers_how_errors_persist_over_a_window(phi: float) -> None:
    """Window sums of AR(1) errors with unit steps: the calibrated phi is the true one, and
    normal sums get no heavy tails."""
    bt = _ar1_backtest(phi)
    ids = bt["unique_id"].unique().to_list()
    cal = _unit_calibration(ids)
    sp = spread(window_sums(bt, cal, ids), cal)
    assert sp.phi == pytest.approx(phi, abs=0.12)
    assert sp.nu is None or sp.nu > 10, sp.nu
    # and the implied spread of a window sum is the one observed
    sums = bt.group_by("unique_id", "cutoff").agg(pl.col("y").sum())["y"].to_numpy()
    implied = window_sd(np.ones(12), sp.phi)
    assert np.quantile(np.abs(sums), 0.8) / sp.quantile(80) == pytest.approx(implied, rel=0.1)


@pytest.mark.parametrize("nu", [3.5, 6.0])
def test_heavy_tailed_window_sums_get_their_tails(nu: float) -> None:
    """Window sums whose scale varies from window to window (a t scale mixture): the fitted
    spread puts both the 80 % and the 95 % bands where the observed sums are (a normal
    matched at 80 % is further from 95 %)."""
    bt = _ar1_backtest(0.5, n_series=60, nu=nu)
    ids = bt["unique_id"].unique().to_list()
    cal = _unit_calibration(ids)
    sp = spread(window_sums(bt, cal, ids), cal)
    assert sp.nu is not None and NU_MIN <= sp.nu < 3 * nu, sp.nu
    sums = np.abs(bt.group_by("unique_id", "cutoff").agg(pl.col("y").sum())["y"].to_numpy())
    sd = window_sd(np.ones(12), sp.phi)
    for level in (80, 95):
        assert np.mean(sums <= sd * sp.quantile(level)) == pytest.approx(level / 100, abs=0.02)
    # a normal matched at 80 % misses the 95 % band by more
    normal_sd = np.quantile(sums, 0.8) / NormalDist().inv_cdf(0.9)
    normal_95 = np.mean(sums <= normal_sd * NormalDist().inv_cdf(0.975))
    assert abs(normal_95 - 0.95) > abs(np.mean(sums <= sd * sp.quantile(95)) - 0.95)


def test_heavy_tailed_paths_keep_the_monthly_band_and_widen_annual_tails() -> None:
    """With a tail spread, each month's 90 % band of the paths is still the calibrated one,
    while annual sums have the spread's ratio of 95 % to 80 % band (not a normal's)."""
    from forecasting.training.config import TrainConfig
    from forecasting.training.hierarchy import Hierarchy

    h, n = 12, 3
    hier = Hierarchy(
        ids=["total", "a", "b", "c"],
        bottom=["a", "b", "c"],
        S=np.vstack([np.ones((1, n)), np.eye(n)]),
        tags={"total": ["total"], "series": ["a", "b", "c"]},
    )
    z90 = NormalDist().inv_cdf(0.95)
    mean = np.full((4, h), 100.0)
    mean[0] = 300.0
    rec = {"mean": mean, "lo_90": mean - 10 * z90, "hi_90": mean + 10 * z90}
    rec["lo_90"][0], rec["hi_90"][0] = 300 - 10 * z90, 300 + 10 * z90  # total: no extra shock
    config = TrainConfig(horizon=h, levels=[90], n_paths=10000, nonnegative=False)
    rng = np.random.default_rng(3)
    residuals = rng.standard_normal((4, 40))
    normal = sample_paths(hier, rec, residuals, Spread(0.6), config)
    heavy = sample_paths(hier, rec, residuals, Spread(0.6, 4.0), config)
    for paths in (normal, heavy):
        dev = paths[1] - 100.0  # series "a": (n_paths, h)
        band = np.quantile(np.abs(dev), 0.9, axis=0)
        assert band == pytest.approx(np.full(h, 10 * z90), rel=0.08)
    ratios = []
    for paths in (normal, heavy):
        sums = np.abs(paths[1].sum(axis=1) - 100.0 * h)
        ratios.append(np.quantile(sums, 0.95) / np.quantile(sums, 0.8))
    assert ratios[0] == pytest.approx(1.53, abs=0.06)
    assert ratios[1] == pytest.approx(
        Spread(0.6, 4.0).quantile(95) / Spread(0.6, 4.0).quantile(80), abs=0.08
    )


def test_a_series_with_few_aligned_errors_draws_its_full_spread() -> None:
    """Series "b" has errors at 4 of the 40 cross-sections (a short backtest, or other
    months): its draws are still standardised (mean 0, sd 1) and spread, not one value
    repeated (what counting its missing errors as zeros gave)."""
    from forecasting.training.paths import _error_draws

    rng = np.random.default_rng(0)
    rows = []
    for w in range(40):
        cutoff = dt.date(2000, 1, 1) + dt.timedelta(days=31 * w)
        rows.append(
            {"unique_id": "a", "ds": cutoff, "cutoff": cutoff, "y": rng.normal(), "yhat": 0.0}
        )
        if w % 10 == 0:
            rows.append(
                {
                    "unique_id": "b",
                    "ds": cutoff,
                    "cutoff": cutoff,
                    "y": rng.normal(5, 2),
                    "yhat": 0.0,
                }
            )
    res = residual_matrix(pl.DataFrame(rows), ["a", "b", "c"])  # "c": no backtest at all
    assert np.isnan(res[1]).sum() == 36 and np.isnan(res[2]).all()
    eps = _error_draws(res, (4000, 3), np.random.default_rng(1))
    for j in range(3):
        e = eps[..., j].ravel()
        assert abs(e.mean()) < 0.1 and abs(e.std() - 1) < 0.1, (j, e.mean(), e.std())
        _, counts = np.unique(e, return_counts=True)
        assert counts.max() < 0.2 * e.size, j  # no value drawn most of the time
