"""Observed vs expected: judge monthly observations against a trained bundle's forecasts.

Pure functions: no I/O. The service and ``spendcast detect`` both call :func:`detect`
(or :func:`judge` on a prebuilt :func:`~forecasting.monitoring.forecast.index_bundle` lookup,
which is what the service keeps in memory so that judging one observation costs O(1)); each
observation gets a :class:`~forecasting.monitoring.judgement.Judgement`.

Statuses, one per observation:

=====================  ======================================================================
``UNKNOWN_SERIES``     the id is not a series of the model
``OUT_OF_HORIZON``     the month is not one of the model's forecast months (before the first
                       forecast month, or beyond the trained horizon)
``INSUFFICIENT_DATA``  the series has fewer than ``min_history`` training months, or its
                       forecast / bounds are not finite: expected is reported when known, but
                       no flag is raised
``ANOMALY``            the value lies outside the interval at ``level``
``LEVEL_SHIFT``        the value completes a run of ``shift_after`` months on one side, all
                       but one of them anomalies (below): a lasting change of level is
                       accepted from the first of them
``EXPECTED``           the value lies inside the interval
=====================  ======================================================================

**Bounds** (split conformal, every level): ``expected`` plus or minus the series' conformal
half-width at ``level`` (:mod:`~forecasting.monitoring.calibration`), grown by the step-ahead
profile when the month is more than one step after the last known month. The model's own (and
the stored reconciled) intervals under-cover one step ahead, so they are used only for series
without in-sample residuals (degenerate series, hand-built bundles): then the bounds are the
stored ones, or sample-path quantiles at other levels. Then the **support** of the series'
history bounds them (:func:`on_support`): a series never negative in training is never expected
or bounded below zero, and an intermittent one (zero in about a quarter of its months or more)
is judged from zero to the ``level`` quantile of its history at least.

The **score** is the two-sided tail probability of the value under a normal fitted to the
judged interval (:func:`~forecasting.monitoring.calibration.normal_tail_probability`), so
``score < 1 - level/100`` exactly when the value is outside the bounds; for the fallback
series it comes from the sample paths at that month, or from the widest stored interval.

**Expected value**: the series' monitoring model (``TrainConfig.monitor_model``: by default
the combination, the ensemble's members combined, whatever the selection gave planners; in
bundles trained before it, the selected model) forecasts the month from its training end,
or conditioned on the known months before it (below): the model whose backtest errors
calibrate the bounds, not the stored forecast, which reconciliation moved so that the
hierarchy adds up (that one is the planners' number, ``GET /v1/forecast``). Series without
a refittable model (degenerate series, hand-built bundles) are judged around the stored
forecast.

**One-step-ahead judging.** The contiguous run of known months right after the training end
(``stored`` in the service, or earlier in the same request; a missing month stops it)
conditions the judgement of later months (:mod:`~forecasting.monitoring.conditioning`).
``conditioned_on`` says how many months conditioned a judgement and ``conditioning`` lists
them (month: value used). **Policy for flagged months**: a month that is itself an ANOMALY
conditions later months with its expectation, not its value (one spike neither drags the
next expectations nor widens their bounds); the latest revision of each month is used.

**Policy for lasting level shifts** (``shift_after``, default 3; 0 turns it off): a run is
``shift_after`` known months in a row on the same side of their expectations, the first an
anomaly; from three months on, one of them may lie inside the bounds if it is nearer the run's
level than the old one (beyond half the mean deviation of the run's anomalies before it): at
the default, two out of three beyond the bounds on one side, as the Western Electric run rules
read a control chart. A lasting shift of a few sigmas puts some of its months just inside the
bounds (the clean month's own error pulls them back), and a run that had to be all anomalies
was broken by such a month, after which the model absorbed the new level unreported; a normal
month between two spikes is near the old level and still breaks the run. While a run is open,
its months inside the bounds condition later months with their expectations, like its
anomalies (with their values, the next expectation took the new level and the run broke;
measured: months of -4 sigma shifts caught on fpp3's us_employment 83.9 -> 85.7 %, of x1.5
shifts on the real-data suite 40 -> 49 %, false alarms unchanged); when the run breaks they
were normal months, and their values condition the later ones. When a run completes, its
last month is reported once as ``LEVEL_SHIFT`` (a flag: ``is_anomaly`` true, ``direction`` the
run's side, even when that month itself is inside its bounds; ``level_shift_since`` = the
first month of the run) and the new level is accepted: the run's months set it for every
later expectation (the model itself keeps the old level), by their mean ratio to their
expectations for a series judged in relative terms (positive, its bounds a share of its
expectation: a seasonal series' shift scales its seasons; an additive offset left its low
months over-corrected and flagged again), else by their mean deviation. So the months after
are judged against the new level (they carry ``level_shift_since`` too) instead
of being flagged every month until the model is retrained. A monitoring job hears "level
changed since M" once, not one anomaly a month; the anomalies before the acceptance stay as
they were reported. With ``shift_after`` 1 or 2 every month of a run is an anomaly; with
``shift_after = 0`` a lasting shift stays flagged every month until the model is retrained.

**Care basis** (``meta.basis == "care"``): the model forecasts complete care months. An
observation of age ``a`` (months between its care month ``ds`` and its ``as_of`` processing
month: the row's ``as_of``, else the ``as_of`` argument, else the latest ``ds`` of the request)
is compared with ``expected * paid_share(a)``; the half-width combines the model's
(scaled by the share) and the share's standard error (``z * expected * sd``) in quadrature.
Values that condition later months are completed first (divided by their paid share).

**Parent/children consistency**: for a flagged parent, ``explained_by`` lists its children
judged for the same month (in the request or stored) with their deviation (observed -
expected) and share of the parent's deviation, largest ``|deviation|`` first.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import polars as pl

from forecasting.bundle import Bundle
from forecasting.calendar import month_index, month_of
from forecasting.data.panel import ID_COL, TARGET_COL, TIME_COL
from forecasting.errors import InputError
from forecasting.monitoring.calibration import (
    normal_tail_probability,
    tail_probability,
    z_score,
)
from forecasting.monitoring.forecast import ForecastIndex, SeriesForecast, index_bundle
from forecasting.monitoring.judgement import (
    DETECT_COLUMNS,
    Contribution,
    Direction,
    Judgement,
    judgements_frame,
)

__all__ = [
    "judge",
    "detect",
    "Obs",
    "DETECT_COLUMNS",
    "SHIFT_AFTER",
    "INTERMITTENT_ADI",
    "on_support",
]  # DETECT_COLUMNS: for `spendcast detect`

Obs = tuple[str, dt.date, float] | tuple[str, dt.date, float, dt.date | None]
_Row = tuple[str, dt.date, float, dt.date | None]
_Known = dict[str, dict[int, tuple[float, dt.date | None]]]  # series -> step -> (y, as_of)


SHIFT_AFTER = 3
"""Default of ``shift_after``: months in a row on one side that accept a new level."""


@dataclass(frozen=True)
class _Level:
    """The level shifts accepted so far, as a map of the model's expectations (complete
    scale): ``x * ratio + offset``. The model itself keeps the old level."""

    ratio: float = 1.0
    offset: float = 0.0

    def apply(self, x: float) -> float:
        """The expectation at the accepted level from the model's."""
        return x * self.ratio + self.offset

    def remove(self, y: float) -> float:
        """A value at the accepted level brought back to the model's level."""
        return (y - self.offset) / self.ratio

    def accept(self, run: list[Judgement], relative: bool) -> _Level:
        """The level once ``run`` (judged at this level) is accepted as a shift: by the mean
        ratio of values to expectations for a series judged in relative terms (a seasonal
        series' shift scales its seasons), else by the mean deviation."""
        expected = [_completed_expected(x) for x in run]
        if relative and all(e > 0 for e in expected):
            m = float(np.mean([_completed(x) / e for x, e in zip(run, expected, strict=True)]))
            if math.isfinite(m) and m > 0:
                return _Level(self.ratio * m, self.offset * m)
        return _Level(self.ratio, self.offset + float(np.mean([_deviation(x) for x in run])))


@dataclass(frozen=True)
class _Judging:
    """What one :func:`judge` call judges against."""

    index: ForecastIndex
    level: int
    min_history: int
    shift_after: int = SHIFT_AFTER


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _age(as_of: dt.date | None, month: int) -> int | None:
    """Months from care month index ``month`` to ``as_of`` (never negative)."""
    return None if as_of is None else max(month_index(as_of) - month, 0)


def _bounds(
    ctx: _Judging, s: SeriesForecast, mean: float, k: int, j: int
) -> tuple[float, float, bool]:
    """Bounds at step ``k``, ``j`` months known; and whether they are one-step bounds."""
    half = None
    if j or ctx.index.calibration.covers(s.unique_id):
        half = ctx.index.half_widths(s.unique_id, ctx.level, k - j, mean)
    if half is not None:
        return mean - half[0], mean + half[1], True
    lo_a, hi_a = s.interval(ctx.level)
    return float(lo_a[k]), float(hi_a[k]), False


INTERMITTENT_ADI = 1.32
"""Average months between non-zero months from which a series is intermittent (the
Syntetos-Boylan-Croston cut-off: at least ~24 % of its months are zero)."""


def on_support(
    history: np.ndarray, mean: float, lo: float, hi: float, level: int
) -> tuple[float, float, float]:
    """Expected, lo, hi within what the series' own history supports.

    A series that was never negative is never expected, nor bounded, below zero (a model fit
    to one, or its one-step update, can go negative: a month at zero is then no anomaly). An
    intermittent one (average interval between non-zero months >= :data:`INTERMITTENT_ADI`)
    may be zero any month, and as high as the ``level`` quantile of its history: its one-step
    model (a smoothed level between bursts) says little about one month. Series with a
    negative month, or no history, are left as they are.
    """
    h = history[np.isfinite(history)]
    if h.size == 0 or bool((h < 0).any()):
        return mean, lo, hi
    mean, lo, hi = max(mean, 0.0), max(lo, 0.0), max(hi, 0.0)
    nonzero = int(np.count_nonzero(h))
    if nonzero == 0 or h.size / nonzero >= INTERMITTENT_ADI:
        lo = 0.0
        hi = max(hi, float(np.quantile(h, level / 100)))
    return mean, lo, hi


def _on_paid_share(
    mean: float, lo: float, hi: float, share: float, sd: float, level: int
) -> tuple[float, float, float]:
    """Expected, lo, hi of a care month paid at ``share`` (sd of the share in quadrature)."""
    spread = z_score(level) * mean * sd
    lo = mean * share - math.hypot(share * (mean - lo), spread)
    hi = mean * share + math.hypot(share * (hi - mean), spread)
    return mean * share, lo, hi


def _score(ctx: _Judging, s: SeriesForecast, k: int, y: float, mean: float) -> float:
    """Tail probability of ``y`` for the fallback series (stored intervals, no calibration)."""
    if s.paths is not None and s.paths.size:
        return tail_probability(y, samples=s.paths[:, k])
    widest = max(s.bounds) if s.bounds else ctx.level
    wlo, whi = s.interval(widest)
    return normal_tail_probability(y, mean, float(wlo[k]), float(whi[k]), widest)


def _judge_one(
    ctx: _Judging,
    s: SeriesForecast,
    k: int,
    y: float,
    known: tuple[float, ...],
    age: int | None,
    level: _Level = _Level(),
) -> Judgement:
    """Judge ``y`` at forecast step ``k`` given completed values of steps ``0..len(known)-1``
    (and the ``level`` shifts accepted so far, on the complete scale)."""
    j = min(len(known), k)
    cond = ctx.index.conditioners[s.unique_id]
    own = cond.forecast(known[:j]) if j else None
    if own is None:  # unconditioned: the model's own forecasts from the training end
        j = 0
        own = cond.forecast(())
    # the series' monitoring model, whose one-step errors calibrate the bounds; the stored
    # (reconciled) forecast only for a series without a refittable model
    mean = level.apply(float(own[k - j] if own is not None else s.mean[k]))
    lo, hi, one_step = _bounds(ctx, s, mean, k, j)
    mean, lo, hi = on_support(s.history_y, mean, lo, hi, ctx.level)
    care = s.basis == "care" and age is not None
    share, sd = s.share(age)
    if care:
        mean, lo, hi = _on_paid_share(mean, lo, hi, share, sd, ctx.level)
    judged = Judgement(
        s.unique_id,
        s.ds[k],
        y,
        "INSUFFICIENT_DATA",
        ctx.level,
        _finite(mean),
        _finite(lo),
        _finite(hi),
        conditioned_on=j,
        conditioning={month_of(s.first_month + i): known[i] for i in range(j)} or None,
        age=age if s.basis == "care" else None,
        paid_share=share if care else None,
    )
    if len(s.history_ds) < ctx.min_history or not all(map(math.isfinite, (mean, lo, hi, y))):
        return judged
    if one_step or care:
        score = normal_tail_probability(y, mean, lo, hi, ctx.level)
    else:
        score = _score(ctx, s, k, y, mean)
    direction: Direction | None = "above" if y > hi else "below" if y < lo else None
    return replace(
        judged,
        status="ANOMALY" if direction else "EXPECTED",
        is_anomaly=direction is not None,
        direction=direction,
        score=score,
    )


def _conditioning_value(v: Judgement, level: _Level, in_shift: bool = False) -> float:
    """What a judged month contributes to conditioning later ones: its completed value
    brought back to the model's level (the model keeps the old level, ``level`` carries the
    accepted shifts), or its expectation when it is itself an anomaly or a month of a shift
    being accepted (``in_shift``)."""
    if (v.is_anomaly or in_shift) and v.expected is not None:
        return level.remove(_completed_expected(v))
    return level.remove(_completed(v))


def _share(v: Judgement) -> float:
    return v.paid_share if v.paid_share and v.paid_share > 0 else 1.0


def _completed(v: Judgement) -> float:
    """The judged value on the complete (care-month) scale."""
    return v.y / _share(v)


def _completed_expected(v: Judgement) -> float:
    """The judged month's expectation on the complete (care-month) scale."""
    return (v.expected or 0.0) / _share(v)


def _walk(
    ctx: _Judging,
    s: SeriesForecast,
    values: dict[int, tuple[float, dt.date | None]],
    last_step: int,
) -> dict[int, Judgement]:
    """Judge the known months of one series in order, up to step ``last_step``.

    ``values``: step -> (value, as_of) of the latest revision. Returns step -> judgement.
    A run (:func:`_extend_run`) among the contiguous known months is accepted as a level
    shift (module docstring): it sets the level of every later expectation
    (:meth:`_Level.accept`), and later months condition the model net of it.
    """
    out: dict[int, Judgement] = {}
    known: list[float] = []
    run: list[int] = []  # steps of the current run of same-side anomalies
    since: dt.date | None = None
    level = _Level()
    relative = s.unique_id in ctx.index.calibration.relative
    contiguous = True
    for k in range(last_step + 1):
        hit = values.get(k)
        if hit is None:  # a missing month ends the contiguous run of known months
            _restore(known, run, out, level)
            contiguous, run = False, []
            continue
        y, as_of = hit
        v = _judge_one(ctx, s, k, y, tuple(known), _age(as_of, s.first_month + k), level)
        judged_at = level
        accepted: list[Judgement] = []
        before = run
        if contiguous and ctx.shift_after > 0:
            run = _extend_run(run, k, v, out, _inside_allowed(ctx.shift_after))
            if len(run) >= ctx.shift_after:
                accepted = [out[i] for i in run[:-1]] + [v]
                level = level.accept(accepted, relative)
                side = out[run[0]].direction
                since, run = s.ds[run[0]], []
                v = replace(v, status="LEVEL_SHIFT", is_anomaly=True, direction=side)
        if since is not None:
            v = replace(v, level_shift_since=since)
        out[k] = v
        if contiguous:
            # a month inside the bounds that extends an open run conditions with its
            # expectation, like the run's anomalies: with its value, a lasting shift's month
            # pulled back inside would carry the new level into the next expectations, and
            # the run would break with the shift absorbed unreported
            pending = bool(run) and run[-1] == k
            known.append(_conditioning_value(v, judged_at, in_shift=pending))
            if not accepted:  # a run that broke: its months inside were normal months
                _restore(known, [i for i in before if i not in run], out, judged_at)
            # once the shift is accepted the level carries it, so the run's months condition
            # with their expectations (the model keeps the old level)
            start = k + 1 - len(accepted)
            for i, x in enumerate(accepted, start=start):
                known[i] = _conditioning_value(x, judged_at, in_shift=True)
    return out


def _restore(
    known: list[float], steps: list[int], out: dict[int, Judgement], level: _Level
) -> None:
    """Condition with their values again the months of ``steps`` that lay inside their bounds
    (months of a run that ended without a shift: normal months after all)."""
    for i in steps:
        if not out[i].is_anomaly:
            known[i] = _conditioning_value(out[i], level)


def _deviation(v: Judgement) -> float:
    """Observed minus expected of a judged month, on the complete scale."""
    return _completed(v) - _completed_expected(v)


def _inside_allowed(shift_after: int) -> int:
    """Months of a run that may lie inside the bounds: one from three months on (two out of
    three beyond the bounds on one side, as the Western Electric run rules read a chart)."""
    return 1 if shift_after >= 3 else 0


def _side(v: Judgement) -> Direction | None:
    """Which side of its expectation a judged month lies on."""
    if v.direction is not None:
        return v.direction
    if v.expected is None:
        return None
    dev = _deviation(v)
    return "above" if dev > 0 else "below" if dev < 0 else None


def _extend_run(
    run: list[int], k: int, v: Judgement, out: dict[int, Judgement], inside: int = 0
) -> list[int]:
    """The run of same-side months after judging step ``k`` (empty when ``v`` breaks it).

    A run starts with an anomaly; it may hold ``inside`` months inside the bounds, each on the
    run's side and nearer the run's level than the old one (beyond half the mean deviation of
    the run's anomalies so far): a normal month between two spikes does not join them.
    """
    if v.is_anomaly:
        if run and out[run[0]].direction != v.direction:
            return [k]
        return [*run, k]
    if not run or _side(v) != out[run[0]].direction:
        return []
    if sum(not out[i].is_anomaly for i in run) + 1 > inside:
        return []
    # nearer the run's level than the old one: beyond half its anomalies' mean deviation
    shift = np.mean([_deviation(out[i]) for i in run if out[i].is_anomaly])
    if abs(_deviation(v)) < abs(shift) / 2:
        return []
    return [*run, k]


def judge(
    observations: Iterable[Obs],
    index: ForecastIndex,
    *,
    level: int = 99,
    min_history: int = 24,
    stored: Iterable[Obs] | None = None,
    as_of: dt.date | None = None,
    shift_after: int = SHIFT_AFTER,
) -> list[Judgement]:
    """Judge ``(unique_id, ds, y[, as_of])`` observations against an ``index_bundle`` lookup.

    Args:
        observations: the observed values; ``ds`` any day of the month.
        index: per-series forecasts (:func:`~forecasting.monitoring.forecast.index_bundle`).
        level: interval level in percent (1..99).
        min_history: fewer training months than this gives ``INSUFFICIENT_DATA``.
        stored: latest known values ``(unique_id, ds, y[, as_of])`` of months after the
            training end; they condition later months (see the module docstring).
        as_of: processing month of the observations without their own (care basis);
            default: the latest ``ds`` of the request.
        shift_after: months in a row on one side, all but one anomalies, that accept a new
            level (0: never; see the module docstring).

    Returns:
        One :class:`Judgement` per observation, in input order.
    """
    if not 0 < level < 100:
        raise InputError(f"level {level} is not between 1 and 99", column="level")
    if shift_after < 0:
        raise InputError(f"shift_after {shift_after} is negative", column="shift_after")
    ctx = _Judging(index, level, min_history, shift_after)
    rows = [_as_obs(o) for o in observations]
    default_as_of = as_of or max((r[1] for r in rows), default=None)
    values: _Known = {}  # stored first, then the request (the newest revision)
    for uid, ds, y, ao in [*(_as_obs(o) for o in stored or ()), *rows]:
        k = _step(index, uid, ds)
        if k is not None:
            values.setdefault(uid, {})[k] = (y, ao or default_as_of)
    last: dict[str, int] = {}  # series -> latest step asked for in the request
    for uid, ds, _, _ in rows:
        k = _step(index, uid, ds)
        if k is not None:
            last[uid] = max(last.get(uid, -1), k)
    walked = {uid: _walk(ctx, index[uid], values[uid], k) for uid, k in last.items()}
    out = [_answer(ctx, row, values, walked, default_as_of) for row in rows]
    return _explain(ctx, out, values, walked)


def _step(index: ForecastIndex, unique_id: str, ds: dt.date) -> int | None:
    s = index.get(unique_id)
    return s.step(ds) if s is not None else None


def _answer(
    ctx: _Judging,
    row: _Row,
    values: _Known,
    walked: dict[str, dict[int, Judgement]],
    default_as_of: dt.date | None,
) -> Judgement:
    """The judgement of one request row (walked, or judged again for a duplicate month)."""
    uid, ds, y, ao = row
    s = ctx.index.get(uid)
    if s is None:
        return Judgement(uid, ds, y, "UNKNOWN_SERIES", ctx.level, as_of=ao)
    k = s.step(ds)
    if k is None:
        return Judgement(uid, ds, y, "OUT_OF_HORIZON", ctx.level, as_of=ao)
    ref = walked[uid][k]
    if ref.y != y or (ao is not None and ao != values[uid][k][1]):
        # a duplicate month in the request with another value: judged on the same basis
        known = tuple((ref.conditioning or {}).values())
        ref = _judge_one(ctx, s, k, y, known, _age(ao or default_as_of, month_index(ds)))
    return ref if ao is None else replace(ref, as_of=ao)


def _as_obs(o: Sequence[Any]) -> _Row:
    ao = o[3] if len(o) > 3 else None
    return (
        str(o[0]),
        o[1].replace(day=1),
        float(o[2]),
        ao.replace(day=1) if ao is not None else None,
    )


def _explain(
    ctx: _Judging, out: list[Judgement], values: _Known, walked: dict[str, dict[int, Judgement]]
) -> list[Judgement]:
    """Fill ``explained_by`` on flagged parents from their children's judgements."""
    for i, v in enumerate(out):
        kids = ctx.index.children.get(v.unique_id) if v.is_anomaly else None
        if not kids or v.expected is None:
            continue
        parent_dev = v.y - v.expected
        parts: list[Contribution] = []
        for c in kids:
            k = ctx.index[c].step(v.ds)
            if k is None or k not in values.get(c, {}):
                continue
            if c not in walked or k not in walked[c]:
                walked[c] = _walk(ctx, ctx.index[c], values[c], k)
            cv = walked[c].get(k)
            if cv is None or cv.expected is None:
                continue
            dev = cv.y - cv.expected
            share = dev / parent_dev if parent_dev else None
            parts.append({"unique_id": c, "deviation": dev, "share": share})
        if parts:
            parts.sort(key=lambda p: -abs(p["deviation"]))
            out[i] = replace(v, explained_by=parts)
    return out


def _obs_rows(frame: pl.DataFrame) -> list[Obs]:
    cols = [
        pl.col(ID_COL).cast(pl.String),
        pl.col(TIME_COL).cast(pl.Date),
        pl.col(TARGET_COL).cast(pl.Float64),
    ]
    if "as_of" in frame.columns:
        cols.append(pl.col("as_of").cast(pl.Date))
    return list(frame.select(cols).iter_rows())


def detect(
    observations: pl.DataFrame,
    model: Bundle | ForecastIndex,
    *,
    level: int = 99,
    min_history: int = 24,
    stored: pl.DataFrame | None = None,
    as_of: dt.date | None = None,
    shift_after: int = SHIFT_AFTER,
) -> pl.DataFrame:
    """Judge a frame of observations (``unique_id, ds, y`` [+ ``as_of``]) against a bundle.

    Args:
        observations: the values to judge; earlier months of a series condition later ones.
        model: a :class:`Bundle` or its ``index_bundle`` lookup.
        level: interval level in percent.
        min_history: fewer training months than this gives ``INSUFFICIENT_DATA``.
        stored: ``unique_id, ds, y`` [+ ``as_of``] already known after the training end
            (latest revision per series and month).
        as_of: processing month of rows without ``as_of`` (care basis); default: the latest
            ``ds`` of ``observations``.
        shift_after: months in a row on one side, all but one anomalies, that accept a new
            level (0: never).

    Returns:
        :data:`DETECT_COLUMNS`, one row per observation, in input order (``explained_by``
        as JSON text).
    """
    for name in (ID_COL, TIME_COL, TARGET_COL):
        if name not in observations.columns:
            raise InputError(
                f"missing column '{name}'",
                column=name,
                hint="observations need unique_id, ds (a date) and y",
            )
    index = index_bundle(model) if isinstance(model, Bundle) else model
    rows = judge(
        _obs_rows(observations),
        index,
        level=level,
        min_history=min_history,
        stored=_obs_rows(stored) if stored is not None else None,
        as_of=as_of,
        shift_after=shift_after,
    )
    return judgements_frame(rows)
