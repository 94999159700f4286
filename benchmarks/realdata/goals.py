"""The suite's goals: each with its measured value and whether it is met."""

from __future__ import annotations

import math
from typing import Any, TypeGuard

from .protocol import ANNUAL_LEVELS, COMBINATION, KINDS

__all__ = [
    "is_number",
    "fmt",
    "within",
    "accuracy_goals",
    "calibration_goals",
    "monitoring_goals",
    "goals",
]


def is_number(x: Any) -> TypeGuard[float]:
    """A finite int or float (not a bool)."""
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


_EPS = 1e-9
"""Rounding slack of the comparisons: 144 of 192 is 75.0 %, within 5 points of 80 % (the
float ``abs(0.75 - 0.80)`` is 0.05000000000000004)."""


def within(value: float, target: float, slack: float) -> bool:
    """``|value - target| <= slack``, up to float rounding."""
    return abs(value - target) <= slack + _EPS


def fmt(x: Any, pct: bool = False) -> str:
    """Three decimals, or a percentage with one; ``n/a`` when not a finite number."""
    if not is_number(x):
        return "n/a"
    return f"{100 * x:.1f}%" if pct else f"{x:.3f}"


def _coverage_misses(by: dict[str, dict[str, float]], slack: float) -> list[str]:
    """``name L%: value`` for every coverage below ``nominal - slack`` at 80/95/99."""
    return [
        f"{name} {lv}%: {fmt(c.get(str(lv)), True)}"
        for name, c in by.items()
        for lv in (80, 95, 99)
        if is_number(c.get(str(lv))) and c[str(lv)] < lv / 100 - slack - _EPS
    ]


def accuracy_goals(s: dict[str, Any]) -> list[dict[str, Any]]:
    """Pooled MASE against the best single and the combination; SeasonalNaive per data set."""
    acc = s["accuracy"]
    pooled = acc["pooled"]
    sc = pooled.get("spendcast", {}).get("mase")
    best = acc["best_single"]
    bv = pooled.get(best, {}).get("mase") if best else None
    comb = pooled.get(COMBINATION, {}).get("mase")
    worse = acc["worse_than_seasonal_naive"]
    return [
        {
            "goal": "pooled MASE <= 0.97 x best single",
            "value": f"{fmt(sc)} vs 0.97 x {fmt(bv)} ({best})",
            "met": sc <= 0.97 * bv if is_number(sc) and is_number(bv) else None,
        },
        {
            "goal": "pooled MASE <= mean combination",
            "value": f"{fmt(sc)} vs {fmt(comb)}",
            "met": sc <= comb if is_number(sc) and is_number(comb) else None,
        },
        {
            "goal": "never worse than SeasonalNaive (MASE, per data set)",
            "value": "worse on: " + (", ".join(worse) or "none"),
            "met": not worse if acc["by_dataset"] else None,
        },
    ]


def calibration_goals(s: dict[str, Any]) -> list[dict[str, Any]]:
    """Coverage pooled, per data set and at the total level; annual-total coverage."""
    cov, ann = s["coverage"], s["annual_coverage"]["pooled"]
    pooled = cov["pooled"]
    levels = [lv for lv in (80, 95, 99) if is_number(pooled.get(str(lv)))]
    per_ds = _coverage_misses(cov["by_dataset"], 0.05)
    total = _coverage_misses(cov["total_level"], 0.05)
    ann_ok = [lv for lv in ANNUAL_LEVELS if is_number(ann.get(str(lv)))]
    return [
        {
            "goal": "coverage 80/95/99 pooled within +-2 points",
            "value": ", ".join(f"{lv}: {fmt(pooled[str(lv)], True)}" for lv in levels),
            "met": all(within(pooled[str(lv)], lv / 100, 0.02) for lv in levels)
            if levels
            else None,
        },
        {
            "goal": "coverage >= nominal - 5 per data set",
            "value": "; ".join(per_ds) or ("all met" if cov["by_dataset"] else "n/a"),
            "met": not per_ds if cov["by_dataset"] else None,
        },
        {
            "goal": "coverage >= nominal - 5 at the total level (PBS, RAC)",
            "value": "; ".join(total) or ("all met" if cov["total_level"] else "n/a"),
            "met": not total if cov["total_level"] else None,
        },
        {
            "goal": "annual-total coverage 80/95 within +-5 points",
            "value": ", ".join(f"{lv}: {fmt(ann[str(lv)], True)}" for lv in ann_ok),
            "met": all(within(ann[str(lv)], lv / 100, 0.05) for lv in ann_ok) if ann_ok else None,
        },
    ]


def monitoring_goals(s: dict[str, Any]) -> list[dict[str, Any]]:
    """False alarms (pooled, PBS) and recall of the injected shifts."""
    mon = s["monitoring"]
    fa, pbs, rec = mon["false_alarm"]["pooled"], mon["false_alarm"]["pbs"], mon["recall"]
    sig = [rec.get(k) for k in KINDS[:2]]
    mult = [rec.get(k) for k in KINDS[2:]]
    return [
        {
            "goal": "false alarms <= 1.5 % pooled",
            "value": fmt(fa, True),
            "met": fa <= 0.015 if is_number(fa) else None,
        },
        {
            "goal": "false alarms <= 2.5 % on PBS",
            "value": fmt(pbs, True),
            "met": pbs <= 0.025 if is_number(pbs) else None,
        },
        {
            "goal": "recall >= 0.9 for +-4 sigma shifts",
            "value": ", ".join(f"{k}: {fmt(rec.get(k))}" for k in KINDS[:2]),
            "met": all(r >= 0.9 for r in sig) if all(is_number(r) for r in sig) else None,
        },
        {
            "goal": "recall >= 0.8 for x1.5 / x0.6 shifts",
            "value": ", ".join(f"{k}: {fmt(rec.get(k))}" for k in KINDS[2:]),
            "met": all(r >= 0.8 for r in mult) if all(is_number(r) for r in mult) else None,
        },
    ]


def goals(s: dict[str, Any]) -> list[dict[str, Any]]:
    """Every goal of the suite with its value and whether it is met (``None``: not measured)."""
    rac, ratio = s.get("rac"), s["time"]["ratio"]
    err = rac["error_pct"] if rac else None
    inside = rac.get("inside_80") if rac else None
    return [
        *accuracy_goals(s),
        *calibration_goals(s),
        *monitoring_goals(s),
        {
            "goal": "RAC |error| <= 1.1 % and observed inside the 80 % interval",
            "value": f"error {fmt(err)} %, inside 80 %: {inside}" if rac else "n/a",
            "met": (abs(err) <= 1.1 and bool(inside)) if rac and is_number(err) else None,
        },
        {
            "goal": "spendcast fit time <= 3 x bare final fit",
            "value": f"x {fmt(ratio)}",
            "met": ratio <= 3 if is_number(ratio) else None,
        },
    ]
