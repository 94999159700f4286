"""Month-by-month monitoring on a really trained bundle: conditioning, calibration, care basis."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import time

import numpy as np
import polars as pl
import pytest

from forecasting.monitoring.forecast import index_bundle
from forecasting.monitoring.judge import _Level, detect, judge
from forecasting.monitoring.judgement import DETECT_COLUMNS, Judgement
from forecasting.training.config import TrainConfig
from forecasting.training.hierarchy import aggregate_panel
from forecasting.training.pipeline import fit
from tests.panels import make_panel

CUT = dt.date(2021, 12, 1)
CONFIG = TrainConfig(models=["SeasonalNaive", "AutoETS", "AutoTheta"], n_paths=200)


def _trained(seed: int):
    panel, meta = make_panel(n_fam=4, n_exe=3, months=84, seed=seed)
    result = fit(panel.filter(pl.col("ds") <= CUT), meta, CONFIG)
    full, _ = aggregate_panel(panel, meta)
    future = full.filter(pl.col("ds") > CUT).sort("unique_id", "ds")
    return result.bundle, future


@pytest.fixture(scope="module")
def trained():
    return _trained(1)


@pytest.fixture(scope="module")
def trained2():
    return _trained(2)


def _one(frame: pl.DataFrame, uid: str, ds: dt.date) -> dict:
    rows = frame.filter((pl.col("unique_id") == uid) & (pl.col("ds") == ds)).to_dicts()
    assert len(rows) == 1
    return rows[0]


def _month(k: int) -> dt.date:
    """Forecast month ``k`` (1-based) after the cut."""
    return dt.date(2022, k, 1)


UID = "total/F1/E1"


def test_stored_months_condition_later_ones(trained):
    bundle, future = trained
    lookup = index_bundle(bundle)
    obs = future.filter(pl.col("unique_id") == UID)
    target = obs.filter(pl.col("ds") == _month(6))
    alone = _one(detect(target, lookup, level=99), UID, _month(6))
    assert alone["conditioned_on"] == 0
    # months 1..5 stored, 8 % above what the model expected: month 6 moves up, narrower bounds
    base = detect(obs.filter(pl.col("ds") < _month(6)), lookup, level=99)
    first = _one(base, UID, _month(1))
    half = (first["hi"] - first["lo"]) / 2
    stored = obs.filter(pl.col("ds") < _month(6)).with_columns(
        (pl.col("y") + 0.5 * half).alias("y")
    )
    cond = _one(detect(target, lookup, level=99, stored=stored), UID, _month(6))
    assert cond["conditioned_on"] == 5
    assert cond["expected"] > alone["expected"]  # toward the stored (higher) level
    assert cond["hi"] - cond["lo"] < alone["hi"] - alone["lo"]  # one step, not six
    assert cond["lo"] <= cond["expected"] <= cond["hi"]


def test_flagged_month_conditions_with_its_expectation(trained):
    bundle, future = trained
    lookup = index_bundle(bundle)
    obs = future.filter(pl.col("unique_id") == UID).head(2)
    plain = detect(obs, lookup, level=99)
    spiked = detect(
        obs.with_columns(
            pl.when(pl.col("ds") == _month(1))
            .then(pl.col("y") * 10)
            .otherwise(pl.col("y"))
            .alias("y")
        ),
        lookup,
        level=99,
    )
    m1, m2 = _one(spiked, UID, _month(1)), _one(spiked, UID, _month(2))
    assert m1["is_anomaly"] and m1["direction"] == "above"
    assert not _one(plain, UID, _month(1))["is_anomaly"]  # the spike, not the month, is flagged
    # month 2 is conditioned on month 1's expectation: the same as feeding the forecast back
    fed = (
        future.filter(pl.col("unique_id") == UID)
        .head(2)
        .with_columns(
            pl.when(pl.col("ds") == _month(1))
            .then(pl.lit(m1["expected"]))
            .otherwise(pl.col("y"))
            .alias("y")
        )
    )
    ref = _one(detect(fed, lookup, level=99), UID, _month(2))
    assert m2["conditioned_on"] == 1
    assert m2["expected"] == pytest.approx(ref["expected"], rel=1e-9)
    # nor widened by it: the bounds are those of a month 1 that came in as expected (a
    # relative series' width follows its expectation, so not those of `plain`)
    assert m2["hi"] - m2["lo"] == pytest.approx(ref["hi"] - ref["lo"], rel=1e-9)


def test_whole_year_at_once_equals_month_by_month(trained):
    bundle, future = trained
    lookup = index_bundle(bundle)
    ids = ["total", "total/F0", UID]
    obs = future.filter(pl.col("unique_id").is_in(ids))
    at_once = detect(obs, lookup, level=95)
    assert at_once.columns == list(DETECT_COLUMNS) and at_once.height == obs.height
    for k in (1, 4, 12):
        month = obs.filter(pl.col("ds") == _month(k))
        stored = obs.filter(pl.col("ds") < _month(k))
        step = detect(month, lookup, level=95, stored=stored)
        for uid in ids:
            a, b = _one(at_once, uid, _month(k)), _one(step, uid, _month(k))
            assert a["status"] == b["status"]
            for col in ("expected", "lo", "hi", "score", "conditioned_on"):
                assert a[col] == pytest.approx(b[col], rel=1e-9), (uid, k, col)
            assert b["conditioned_on"] == k - 1
    # re-judging is idempotent and cached (O(1) per series once known)
    t0 = time.perf_counter()
    again = detect(obs, lookup, level=95)
    assert time.perf_counter() - t0 < 0.5
    assert again.equals(at_once)


def test_a_revision_of_an_earlier_month_changes_later_judgements(trained):
    bundle, future = trained
    lookup = index_bundle(bundle)
    obs = future.filter(pl.col("unique_id") == UID)
    m3 = obs.filter(pl.col("ds") == _month(3))
    stored = obs.filter(pl.col("ds") < _month(3))
    before = _one(detect(m3, lookup, stored=stored), UID, _month(3))
    revised = stored.with_columns(
        pl.when(pl.col("ds") == _month(2))
        .then(pl.col("y") * 1.03)
        .otherwise(pl.col("y"))
        .alias("y")
    )
    after = _one(detect(m3, lookup, stored=revised), UID, _month(3))
    assert after["expected"] != pytest.approx(before["expected"], rel=1e-9)
    cond = json.loads(
        _one(detect(m3, lookup, stored=revised), UID, _month(3))["explained_by"] or "null"
    )
    assert cond is None  # not flagged: nothing to explain


def test_explained_by_lists_the_children_of_a_flagged_parent(trained):
    bundle, future = trained
    lookup = index_bundle(bundle)
    month = future.filter(pl.col("ds") == _month(1))
    base = detect(month, lookup, level=99)
    kids = [u for u in lookup if lookup[u].info.get("parent") == "total/F2"]
    shocked_kid = kids[0]
    bump = 6 * (_one(base, "total/F2", _month(1))["hi"] - _one(base, "total/F2", _month(1))["y"])
    bump = max(bump, 0.3 * _one(base, "total/F2", _month(1))["expected"])
    shocked = month.with_columns(
        pl.when(pl.col("unique_id").is_in(["total/F2", shocked_kid, "total"]))
        .then(pl.col("y") + bump)
        .otherwise(pl.col("y"))
        .alias("y")
    )
    # the children are stored, the parent alone is posted: stored children explain it
    stored = shocked.filter(pl.col("unique_id").is_in(kids))
    parent = shocked.filter(pl.col("unique_id") == "total/F2")
    row = _one(detect(parent, lookup, level=99, stored=stored), "total/F2", _month(1))
    assert row["is_anomaly"] and row["direction"] == "above"
    parts = json.loads(row["explained_by"])
    assert [p["unique_id"] for p in parts][0] == shocked_kid
    assert {p["unique_id"] for p in parts} == set(kids)
    devs = [abs(p["deviation"]) for p in parts]
    assert devs == sorted(devs, reverse=True)
    assert parts[0]["share"] > 0.7
    assert sum(p["deviation"] for p in parts) == pytest.approx(row["y"] - row["expected"], rel=0.25)


def _flag_rate(trained_pair, level: int) -> tuple[float, int]:
    bundle, future = trained_pair
    out = detect(future, index_bundle(bundle), level=level)
    assert (out["status"].is_in(["EXPECTED", "ANOMALY", "LEVEL_SHIFT"])).all()
    return float(out["is_anomaly"].mean()), out.height  # type: ignore[arg-type]


@pytest.mark.parametrize("level", [95, 99])
def test_false_alarm_rate_is_calibrated(trained, trained2, level):
    # clean months of generated series with known Gaussian noise, judged month by month
    r1, n1 = _flag_rate(trained, level)
    r2, n2 = _flag_rate(trained2, level)
    rate, n = (r1 * n1 + r2 * n2) / (n1 + n2), n1 + n2
    nominal = 1 - level / 100
    sd = math.sqrt(nominal * (1 - nominal) / n)
    assert abs(rate - nominal) <= 3 * sd + 1e-9, (rate, nominal, sd, n)


def test_care_basis_fresh_month_is_compared_with_its_paid_share(trained):
    bundle, future = trained
    ids = bundle.ids
    ages = list(range(13))
    share = [
        0.583,
        0.87,
        0.936,
        0.961,
        0.972,
        0.978,
        0.983,
        0.986,
        0.988,
        0.991,
        0.992,
        0.994,
        0.995,
    ]
    completion = pl.DataFrame(
        {
            "unique_id": [u for u in ids for _ in ages],
            "age": [a for _ in ids for a in ages],
            "paid_share": [s for _ in ids for s in share],
            "paid_share_sd": [0.01 for _ in ids for _ in ages],
        },
        schema={
            "unique_id": pl.String,
            "age": pl.Int64,
            "paid_share": pl.Float64,
            "paid_share_sd": pl.Float64,
        },
    )
    care = dataclasses.replace(
        bundle, meta=dataclasses.replace(bundle.meta, basis="care"), completion=completion
    )
    lookup = index_bundle(care)
    flux = index_bundle(bundle)
    fresh = future.filter(pl.col("ds") == _month(1)).with_columns(pl.col("y") * 0.583)
    judged = detect(fresh, lookup, level=99, as_of=_month(1))
    assert (judged["age"] == 0).all()
    np.testing.assert_allclose(judged["paid_share"].to_numpy(), 0.583)
    assert not judged["is_anomaly"].any(), judged.filter(pl.col("is_anomaly"))
    as_flux = detect(fresh, flux, level=99)
    assert as_flux["is_anomaly"].mean() > 0.9  # the naive comparison: a false drop everywhere
    # the same value a year later (age 12) is complete: now it is a drop
    old = detect(fresh, lookup, level=99, as_of=dt.date(2023, 1, 1))
    assert (old["age"] == 12).all() and old["is_anomaly"].mean() > 0.9
    # a per-row as_of wins over the argument
    rowwise = detect(
        fresh.with_columns(pl.lit(_month(1)).alias("as_of")),
        lookup,
        level=99,
        as_of=dt.date(2023, 1, 1),
    )
    assert (rowwise["age"] == 0).all()
    np.testing.assert_allclose(
        judged["expected"].to_numpy(), as_flux["expected"].to_numpy() * 0.583, rtol=1e-9
    )


def _shifted(future: pl.DataFrame, lookup, start: int) -> pl.DataFrame:
    """UID's held-out year with a lasting shift of 12 one-step half-widths from ``start``,
    in proportion to each month's value (UID is judged in relative terms: a shift of its
    level scales its seasons)."""
    obs = future.filter(pl.col("unique_id") == UID)
    first = _one(detect(obs.head(1), lookup, level=99), UID, _month(1))
    factor = 1 + 12 * (first["hi"] - first["lo"]) / 2 / first["expected"]
    return obs.with_columns(
        pl.when(pl.col("ds") >= _month(start)).then(pl.col("y") * factor).otherwise(pl.col("y"))
    )


@pytest.mark.parametrize("after", [2, 3])
def test_a_lasting_shift_is_reported_once_then_accepted(trained, after):
    bundle, future = trained
    lookup = index_bundle(bundle)
    obs = _shifted(future, lookup, start=4)
    out = detect(obs, lookup, level=99, shift_after=after).sort("ds")
    status = dict(zip(out["ds"].to_list(), out["status"].to_list(), strict=True))
    since = dict(zip(out["ds"].to_list(), out["level_shift_since"].to_list(), strict=True))
    run = [_month(k) for k in range(4, 4 + after)]
    assert [status[d] for d in run] == ["ANOMALY"] * (after - 1) + ["LEVEL_SHIFT"]
    assert all(since[d] is None for d in run[:-1]) and since[run[-1]] == _month(4)
    later = [_month(k) for k in range(4 + after, 13)]
    # judged against the new level: back to EXPECTED, inside the shift that began in month 4
    assert [status[d] for d in later] == ["EXPECTED"] * len(later)
    assert all(since[d] == _month(4) for d in later)
    # month by month (what a monitoring job does) gives the same verdicts
    for k in (4 + after - 1, 12):
        month = obs.filter(pl.col("ds") == _month(k))
        earlier = obs.filter(pl.col("ds") < _month(k))
        step = detect(month, lookup, level=99, stored=earlier, shift_after=after)
        assert _one(step, UID, _month(k))["status"] == status[_month(k)]


def test_without_the_shift_policy_a_lasting_shift_stays_flagged(trained):
    bundle, future = trained
    lookup = index_bundle(bundle)
    out = detect(_shifted(future, lookup, start=4), lookup, level=99, shift_after=0)
    flagged = out.filter(pl.col("ds") >= _month(4))
    assert flagged["status"].to_list() == ["ANOMALY"] * 9
    assert flagged["level_shift_since"].null_count() == 9


def test_a_spike_is_not_a_level_shift(trained):
    bundle, future = trained
    lookup = index_bundle(bundle)
    obs = future.filter(pl.col("unique_id") == UID)
    spiked = obs.with_columns(
        pl.when(pl.col("ds").is_in([_month(3), _month(5)]))
        .then(pl.col("y") * 10)
        .otherwise(pl.col("y"))
    )
    out = detect(spiked, lookup, level=99)
    assert "LEVEL_SHIFT" not in out["status"].to_list()
    assert out["level_shift_since"].null_count() == out.height


def _walk_months(lookup, obs: pl.DataFrame, place: dict[int, float], after: int = 3) -> dict:
    """Judge ``UID``'s months 1..12 one at a time (the earlier ones stored, as a monitoring job
    does); month ``k`` in ``place`` is put ``place[k]`` one-step half-widths above the
    expectation it is judged against. Returns month -> judgement."""
    obs = obs.filter(pl.col("unique_id") == UID).sort("ds")
    out = {}
    for k in range(1, 13):
        before = obs.filter(pl.col("ds") < _month(k))
        month = obs.filter(pl.col("ds") == _month(k))
        stored = before if before.height else None
        if k in place:
            probe = _one(
                detect(month, lookup, level=99, stored=stored, shift_after=after), UID, _month(k)
            )
            y = probe["expected"] + place[k] * (probe["hi"] - probe["expected"])
            month = month.with_columns(pl.lit(y).alias("y"))
            obs = obs.with_columns(
                pl.when(pl.col("ds") == _month(k)).then(y).otherwise(pl.col("y")).alias("y")
            )
        out[k] = _one(
            detect(month, lookup, level=99, stored=stored, shift_after=after), UID, _month(k)
        )
    return out


@pytest.mark.parametrize(
    "pattern",
    [
        (1.6, 0.9, 1.6),  # anomaly, inside (beyond half the shift), anomaly
        (1.6, 1.6, 0.9),  # two anomalies, then inside on their side
    ],
)
def test_two_of_three_months_beyond_the_bounds_on_one_side_accept_a_shift(trained, pattern):
    bundle, future = trained
    lookup = index_bundle(bundle)
    got = _walk_months(lookup, future, {4: pattern[0], 5: pattern[1], 6: pattern[2]})
    inside = [k for k, p in zip((4, 5, 6), pattern, strict=True) if p < 1]
    assert all(got[k]["status"] == "EXPECTED" for k in inside if k < 6)
    assert got[6]["status"] == "LEVEL_SHIFT" and got[6]["level_shift_since"] == _month(4)
    # a flag a monitoring job hears, on the side of the run, even when inside the bounds
    assert got[6]["is_anomaly"] and got[6]["direction"] == "above"
    assert got[7]["level_shift_since"] == _month(4)  # judged inside the accepted shift


@pytest.mark.parametrize(
    "pattern",
    [
        (1.6, 0.3, 1.6),  # the month between is near the old level: two spikes, not a shift
        (1.6, -0.5, 1.6),  # ... or on the other side
        (1.6, 0.9, 0.9),  # two months inside: one anomaly is not a shift
    ],
)
def test_a_run_needs_two_of_three_beyond_the_bounds_and_the_third_near_them(trained, pattern):
    bundle, future = trained
    lookup = index_bundle(bundle)
    got = _walk_months(lookup, future, {4: pattern[0], 5: pattern[1], 6: pattern[2]})
    assert all(got[k]["status"] != "LEVEL_SHIFT" for k in range(4, 7))
    assert all(got[k]["level_shift_since"] is None for k in range(4, 7))


def test_a_month_inside_an_open_run_conditions_with_its_expectation_until_the_run_breaks(
    trained,
):
    """A lasting shift's month pulled back inside the bounds by its own noise used to
    condition the next month with its value: the next expectation took the new level, the
    run broke and the shift was absorbed unreported (part of fpp3's us_employment's missed -4
    sigma shifts). While the run is open the month conditions with its expectation; once
    the run breaks it was a normal month, and its value conditions the later ones."""
    bundle, future = trained
    lookup = index_bundle(bundle)
    got = _walk_months(lookup, future, {4: 1.6, 5: 0.9})
    assert got[4]["status"] == "ANOMALY" and got[5]["status"] == "EXPECTED"
    assert got[5]["y"] != pytest.approx(got[5]["expected"])
    judged = judge([(UID, _month(k), got[k]["y"]) for k in range(1, 13)], lookup, level=99)
    by_month = {j.ds: j for j in judged}
    m5, m6, m7 = _month(5), _month(6), _month(7)
    assert by_month[m6].conditioning is not None and by_month[m7].conditioning is not None
    assert by_month[m6].conditioning[m5] == pytest.approx(got[5]["expected"])
    assert by_month[m6].status == "EXPECTED"  # month 6 at its clean value: the run broke
    assert by_month[m7].conditioning[m5] == pytest.approx(got[5]["y"])
    # a missing month ends the contiguous months, and the open run with them
    gap = [(UID, _month(k), got[k]["y"]) for k in (1, 2, 3, 4, 5, 7)]
    after_gap = {j.ds: j for j in judge(gap, lookup, level=99)}[m7]
    assert after_gap.conditioning is not None
    assert after_gap.conditioning[m5] == pytest.approx(got[5]["y"])


def test_with_two_months_every_month_of_the_run_is_beyond_the_bounds(trained):
    bundle, future = trained
    lookup = index_bundle(bundle)
    loose = _walk_months(lookup, future, {4: 1.6, 5: 0.9}, after=2)
    assert loose[5]["status"] == "EXPECTED" and loose[5]["level_shift_since"] is None
    strict = _walk_months(lookup, future, {4: 1.6, 5: 1.6}, after=2)
    assert strict[5]["status"] == "LEVEL_SHIFT" and strict[5]["level_shift_since"] == _month(4)


def test_the_expectation_is_the_series_own_model_not_the_reconciled_forecast(trained):
    """Bounds are calibrated on each series' own model's errors, so they are centred on its
    forecasts; MinTrace moved the stored (planners') means so that the hierarchy adds up."""
    bundle, future = trained
    lookup = index_bundle(bundle)
    obs = future.filter(pl.col("ds") <= _month(3))
    judged = detect(obs, lookup, level=99)
    moved = 0
    for row in judged.iter_rows(named=True):
        uid, k = row["unique_id"], row["ds"].month - 1
        stored = float(lookup.forecasts[uid].mean[k])
        known = tuple(
            obs.filter((pl.col("unique_id") == uid) & (pl.col("ds") < row["ds"]))
            .sort("ds")["y"]
            .to_list()
        )
        own = lookup.conditioners[uid].forecast(known)
        assert own is not None, uid
        assert row["conditioned_on"] == len(known)
        assert row["expected"] == pytest.approx(max(float(own[0]), 0.0), rel=1e-9, abs=1e-9)
        moved += not math.isclose(stored, float(own[0]), rel_tol=1e-3) and k == 0
    assert moved > 0  # reconciliation did move some first months: the test can tell them apart


def test_a_seasonal_series_level_shift_scales_its_seasons(trained):
    """A series judged in relative terms (positive; bounds a share of the expectation) that
    halves from month 4 keeps its seasonal shape at half the level: once the shift is
    accepted, every later month is expected at half the model's forecast, not at the
    forecast less one average amount (which over-corrects the low months)."""
    bundle, future = trained
    lookup = index_bundle(bundle)
    assert UID in lookup.calibration.relative
    own = lookup.conditioners[UID].forecast(())
    assert own is not None and np.ptp(own) > 0.2 * own.mean()  # a seasonal shape to keep
    half = np.where(np.arange(12) >= 3, 0.5, 1.0)
    obs = (
        future.filter(pl.col("unique_id") == UID)
        .sort("ds")
        .with_columns(pl.Series("y", half * own))
    )
    out = detect(obs, lookup, level=99).sort("ds")
    assert out["status"].to_list()[3:6] == ["ANOMALY", "ANOMALY", "LEVEL_SHIFT"]
    after = out.filter(pl.col("ds") >= _month(7))
    # the run's months condition the combination's members with the combined expectation,
    # which moves each member a little (one model alone would stay on its path exactly)
    np.testing.assert_allclose(after["expected"].to_numpy(), 0.5 * own[6:], rtol=0.02)
    offset = own[6:] + np.mean(0.5 * own[3:6] - own[3:6])  # what an additive shift expects
    assert np.max(np.abs(offset / (0.5 * own[6:]) - 1)) > 0.1
    assert after["status"].to_list() == ["EXPECTED"] * 6


def _month_judged(y: float, expected: float) -> Judgement:
    return Judgement(UID, _month(1), y, "ANOMALY", 99, expected=expected, lo=0.0, hi=0.0)


def test_an_accepted_level_is_a_ratio_for_relative_series_and_an_offset_otherwise():
    run = [_month_judged(50.0, 100.0), _month_judged(120.0, 200.0), _month_judged(35.0, 50.0)]
    ratio = _Level().accept(run, relative=True)
    assert ratio.ratio == pytest.approx((0.5 + 0.6 + 0.7) / 3) and ratio.offset == 0.0
    offset = _Level().accept(run, relative=False)
    assert offset.ratio == 1.0 and offset.offset == pytest.approx((-50 - 80 - 15) / 3)
    # a second shift composes with the first; remove() undoes apply()
    both = offset.accept([_month_judged(offset.apply(100.0) * 2, offset.apply(100.0))], True)
    assert both.apply(100.0) == pytest.approx(2 * offset.apply(100.0))
    assert both.remove(both.apply(123.0)) == pytest.approx(123.0)
    # an expectation held at zero cannot give a ratio: the offset
    zero = _Level().accept([_month_judged(5.0, 0.0)], relative=True)
    assert zero.ratio == 1.0 and zero.offset == pytest.approx(5.0)
