"""forecasting.monitoring.adjustment: working-day (French calendar) and seasonal adjustment."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from forecasting.calendar import add_months, working_days
from forecasting.monitoring.adjustment import (
    MIN_MONTHS,
    adjust,
    adjust_all,
    french_calendar,
    working_day_regressor,
)
from forecasting.monitoring.forecast import index_bundle
from forecasting.monitoring.growth import timeline
from tests.service.synthetic import make_bundle

START = dt.date(2014, 1, 1)
N = 132  # 11 years
DS = [add_months(START, k) for k in range(N)]
SEASON = np.array([1.0, 0.97, 1.04, 1.0, 0.98, 1.01, 0.94, 0.78, 1.02, 1.06, 1.0, 1.12])
ELASTICITY = 0.8  # the synthetic generator's: amount ~ working_days ** 0.8


def _series(seed: int = 0, wd: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    trend = 1e9 * np.exp(0.03 * np.arange(N) / 12)
    season = SEASON[[d.month - 1 for d in DS]]
    days = np.array([working_days(d.year, d.month) for d in DS], dtype=float)
    effect = (days / days.mean()) ** ELASTICITY if wd else 1.0
    return trend * season * effect * np.exp(rng.normal(0, 0.005, N))


def _seasonal_spread(x: np.ndarray) -> float:
    """Spread of the calendar months' mean ratios to a 13-month moving average."""
    trend = np.convolve(x, np.ones(13) / 13, mode="same")
    ratio = (x / trend)[6:-6]
    months = np.array([d.month for d in DS])[6:-6]
    return float(np.std([ratio[months == m].mean() for m in range(1, 13)]))


def test_french_working_days_and_seasonality_are_removed():
    y = _series()
    tl = timeline(DS[:120], y[:120], DS[120:], y[120:])  # the last year as "projected"
    a = adjust(tl, french=True)
    assert a.available and a.working_days and a.multiplicative
    # one more working day in a ~21-day month: about 0.8 / 21 = 3.8 %
    assert a.working_day_effect == pytest.approx(100 * ELASTICITY / 21, rel=0.2)
    assert _seasonal_spread(y) > 0.05
    assert _seasonal_spread(a.value) < 0.004
    # the adjusted series follows the trend: month-on-month growth near 3 %/12
    assert np.nanmedian(a.mom_pct) == pytest.approx(100 * (np.exp(0.03 / 12) - 1), abs=0.05)
    raw_yoy = 100 * (y[12:] / y[:-12] - 1)
    assert np.nanstd(a.yoy_pct) < 0.3 * np.std(raw_yoy)  # what is left is the 0.5 % noise
    assert a.projected[120:].all() and not a.projected[:120].any()


def test_without_a_french_calendar_only_seasonality_is_removed():
    y = _series(wd=True)
    tl = timeline(DS, y, [], np.empty(0))
    a = adjust(tl, french=False)
    assert a.available and not a.working_days and a.working_day_effect is None
    assert "no working-day correction" in a.note
    assert _seasonal_spread(a.value) < 0.01
    # working-day noise stays in (what the French correction removes)
    fr = adjust(tl, french=True)
    assert np.nanstd(fr.mom_pct) < 0.5 * np.nanstd(a.mom_pct)


def test_regressor_is_centred_per_calendar_month():
    ds = [dt.date(y, m, 1) for y in range(2000, 2040) for m in range(1, 13)]
    d = working_day_regressor(ds).reshape(40, 12)
    np.testing.assert_allclose(d.mean(axis=0), 0.0, atol=1e-9)


def test_short_gappy_and_non_positive_series():
    short = timeline(DS[: MIN_MONTHS - 1], np.ones(MIN_MONTHS - 1), [], np.empty(0))
    a = adjust(short, french=True)
    assert not a.available and "at least" in a.note and np.isnan(a.value).all()
    gap = timeline(DS[:20] + DS[21:60], np.ones(59), [], np.empty(0))
    assert "gap" in adjust(gap, french=True).note
    y = _series(wd=False) / 1e9 - 1.0  # crosses zero: additive
    b = adjust(timeline(DS, y, [], np.empty(0)), french=True)
    assert b.available and not b.multiplicative and np.isfinite(b.value).all()


@pytest.mark.parametrize(
    ("source", "french"),
    [
        ("open-damir:A201501.csv.gz,...", True),
        ("legacy:N201501.CSV", True),
        ("tidy:pbs.csv", False),
        ("synthetic", False),
    ],
)
def test_french_calendar_follows_the_data_source(source, french):
    assert french_calendar(source) is french
    adjusted = adjust_all(index_bundle(make_bundle(seed=1)), source)
    assert {a.working_days for a in adjusted.values()} == {french}


def test_adjustments_are_computed_once_at_first_use_or_by_fill():
    index = index_bundle(make_bundle(seed=1))
    source = "legacy:N201501.CSV"
    lazy = adjust_all(index, source)
    assert not lazy._done and len(lazy) == len(index) and set(lazy) == set(index)
    uid = next(iter(index))
    first = lazy[uid]
    assert lazy[uid] is first and set(lazy._done) == {uid}
    assert lazy.fill() == len(index) and set(lazy._done) == set(index)
    s = index[uid]
    eager = adjust(timeline(s.history_ds, s.history_y, s.ds, s.mean), french=True)
    assert french_calendar(source) and first.working_days
    np.testing.assert_array_equal(first.value, eager.value)


def test_the_service_starts_without_the_model_libraries():
    """Cold start: statsforecast and statsmodels (seconds to import) load after readiness."""
    import subprocess
    import sys

    code = (
        "import sys, service.main; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'statsforecast', 'statsmodels'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
