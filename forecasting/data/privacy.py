"""No small cells: series whose monthly counts fall below a threshold are pooled into ``autres``.

The open data was released on the condition that no person can be re-identified, directly or
indirectly. A cell (a series in a month) that describes a handful of acts can describe a
handful of professionals or patients, so ``spendcast ingest`` keeps, beside each amount, the
acts behind it (the panel's ``count``: ``FLT_ACT_QTE`` for Open DAMIR, ``act_dnb`` for the
legacy tables, ``--count-col`` for a tidy file) and applies one rule before anything is
trained or served:

* a cell is *small* when its count is below the threshold (``--min-cell``, default
  :data:`MIN_CELL` = 10); an empty cell (no act and no amount: a month filled with 0)
  describes no one and is not small;
* level by level, from the top, the children of each parent whose cells include a small one
  are pooled into the parent's ``autres`` member (a child already named ``autres`` is part of
  it); while ``autres`` itself has a small cell, the next-smallest sibling (by its smallest
  monthly count) joins it, until it passes or every child has joined (the level collapses
  into its parent: its only child is ``autres``, equal to the parent). A pooled child's own
  children move under ``autres`` (same names are summed) and are checked in turn at the next
  level. Amounts are summed, never dropped: every parent and the total are unchanged, so the
  hierarchy stays coherent;
* a *flat* panel (unrelated series, no meaningful parent) cannot be pooled (a sum of values
  of different units means nothing): its small series are left out, and the report says so;
* a month where the total itself is small cannot be published at all: an error.

Why 10: Cnam's open-data releases mask the counts under 10 (Open Medic, Open Bio, Open LPP,
the "cartographie des pathologies" publish no cell of fewer than 10 beneficiaries or
patients). The public files spendcast reads give acts, not persons; as one person accounts
for one act or more, a threshold on acts is the weaker of the two: raise ``--min-cell`` when
the cells should describe at least 10 persons (``--min-cell 0`` turns the rule off).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from forecasting.data.panel import COUNT_COL, ROOT_ID, SEP, TARGET_COL, TIME_COL, panel_gaps
from forecasting.errors import InputError

__all__ = [
    "MIN_CELL",
    "AUTRES",
    "Pooling",
    "pool_small_cells",
    "relabel",
    "series_minimums",
    "minimums",
]

MIN_CELL = 10
"""Default threshold: a cell with fewer acts than this is small (see the module docstring)."""
AUTRES = "autres"
"""The member small children are pooled into."""
_ROOT = "__spendcast_root"
_MIN, _AT, _NEW = "min_count", "min_ds", "__spendcast_new"


@dataclass
class Pooling:
    """What the small-cell rule did (the ingest report's ``privacy`` section).

    Attributes:
        threshold: the smallest count a cell may have (0: the rule is off).
        pooled: one entry per pooled (or, flat, left-out) series: ``series``, ``into``,
            ``min_count``, ``month``, ``why``.
        collapsed: parents whose level collapsed into a lone ``autres``.
        mapping: ``__o0, __o1, ...`` (a bottom series' levels before) and the levels after,
            for :func:`relabel`; a series left out has no row.
    """

    threshold: int
    pooled: list[dict[str, Any]] = field(default_factory=list)
    collapsed: list[str] = field(default_factory=list)
    mapping: pl.DataFrame | None = None

    def to_json(self) -> dict[str, Any]:
        return {"min_cell": self.threshold, "pooled": self.pooled, "collapsed": self.collapsed}


def _live() -> pl.Expr:
    """Cells that describe someone: some act or some amount."""
    return (pl.col(COUNT_COL) != 0) | (pl.col(TARGET_COL) != 0)


def minimums(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """``keys``, ``min_count`` and ``min_ds`` (its month) of each group's summed monthly cells.

    Groups without a live cell (all empty) are left out.
    """
    cells = frame.group_by([*keys, TIME_COL]).agg(pl.col(TARGET_COL).sum(), pl.col(COUNT_COL).sum())
    return (
        cells.filter(_live())
        .sort([*keys, COUNT_COL, TIME_COL])
        .group_by(keys, maintain_order=True)
        .first()
        .select(*keys, pl.col(COUNT_COL).alias(_MIN), pl.col(TIME_COL).alias(_AT))
    )


def _id(parts: tuple[Any, ...]) -> str:
    return SEP.join(str(p) for p in parts)


def series_minimums(panel: pl.DataFrame, levels: tuple[str, ...]) -> dict[str, int]:
    """Series id at every level (``total``, ``total/a``, ...) -> its smallest live monthly count."""
    if COUNT_COL not in panel.columns:
        return {}
    frame = panel.with_columns(pl.lit(ROOT_ID).alias(_ROOT))
    out: dict[str, int] = {}
    for j in range(len(levels) + 1):
        keys = [_ROOT, *levels[:j]]
        for row in minimums(frame, keys).iter_rows():
            out[_id(row[: len(keys)])] = int(row[len(keys)])
    return out


def pool_small_cells(
    panel: pl.DataFrame, levels: tuple[str, ...], threshold: int, *, flat: bool = False
) -> tuple[pl.DataFrame, Pooling]:
    """Apply the small-cell rule (module docstring) to a bottom-level panel with ``count``.

    Args:
        panel: levels, ``ds``, ``y``, ``count``.
        levels: the hierarchy, top to bottom.
        threshold: the smallest count a cell may have; 0 (or no ``count``) does nothing.
        flat: unrelated series: small ones are left out instead of pooled.

    Returns:
        The panel (gaps of pooled series filled with empty cells) and what was done.

    Raises:
        InputError: the total itself has a small month (hierarchical panels).
    """
    pooling = Pooling(threshold)
    if threshold <= 0 or COUNT_COL not in panel.columns or panel.is_empty():
        return panel, pooling
    frame = panel.with_columns(pl.lit(ROOT_ID).alias(_ROOT))
    if not flat:
        _check_total(frame, threshold)
    keys = frame.select(_ROOT, *levels).unique().with_columns(_originals(levels))
    for j, level in enumerate(levels):
        parents = [_ROOT, *levels[:j]]
        mins = minimums(frame, [*parents, level])
        moved = _plan_level(frame, mins, parents, level, threshold, pooling, flat)
        if moved is None:
            continue
        frame, keys = (_move(f, moved, parents, level, flat) for f in (frame, keys))
        frame = frame.group_by([_ROOT, *levels, TIME_COL]).agg(
            pl.col(TARGET_COL).sum(), pl.col(COUNT_COL).sum()
        )
    pooling.mapping = keys.drop(_ROOT)
    out = frame.drop(_ROOT)
    gaps = panel_gaps(out, list(levels))
    if gaps.height:  # a pooled series spans its members' months: a month none had is empty
        empty = gaps.with_columns(
            pl.lit(0.0).alias(TARGET_COL), pl.lit(0, dtype=pl.Int64).alias(COUNT_COL)
        )
        out = pl.concat([out, empty], how="diagonal")
    return out.select(panel.columns), pooling


def _originals(levels: tuple[str, ...]) -> list[pl.Expr]:
    return [pl.col(lvl).alias(f"__o{i}") for i, lvl in enumerate(levels)]


def _move(
    frame: pl.DataFrame, moved: pl.DataFrame, parents: list[str], level: str, flat: bool
) -> pl.DataFrame:
    """The rows of ``frame`` with the moved children renamed ``autres`` (flat: removed)."""
    if flat:
        return frame.join(moved, on=[*parents, level], how="anti")
    return (
        frame.join(moved, on=[*parents, level], how="left")
        .with_columns(pl.coalesce(_NEW, level).alias(level))
        .drop(_NEW)
    )


def relabel(
    frame: pl.DataFrame, pooling: Pooling, levels: tuple[str, ...], keys: list[str]
) -> pl.DataFrame:
    """Apply a pooling to another frame of bottom series (e.g. the care x processing
    triangle): levels renamed as the panel's, rows of left-out series dropped, the numeric
    columns summed over ``levels`` + ``keys``."""
    if pooling.mapping is None:
        return frame
    before = [f"__o{i}" for i in range(len(levels))]
    renamed = frame.rename(dict(zip(levels, before, strict=True)))
    joined = renamed.join(pooling.mapping, on=before, how="inner").drop(before)
    rest = [c for c in frame.columns if c not in (*levels, *keys)]
    return (
        joined.group_by([*levels, *keys]).agg(pl.col(c).sum() for c in rest).select(frame.columns)
    )


def _check_total(frame: pl.DataFrame, threshold: int) -> None:
    total = minimums(frame, [_ROOT])
    if total.height and total[_MIN][0] < threshold:
        raise InputError(
            f"the total itself has {total[_MIN][0]} act(s) in {str(total[_AT][0])[:7]}, fewer "
            f"than --min-cell {threshold}: no cell of that month can be published",
            column="min-cell",
            hint="drop that month from the input, or lower --min-cell (0 turns the rule off)",
        )


def _plan_level(
    frame: pl.DataFrame,
    mins: pl.DataFrame,
    parents: list[str],
    level: str,
    threshold: int,
    pooling: Pooling,
    flat: bool,
) -> pl.DataFrame | None:
    """``parents, level, __new`` of the children that move (None when none does)."""
    small_parents = mins.filter(pl.col(_MIN) < threshold).select(parents).unique()
    if small_parents.is_empty():
        return None
    rows: list[tuple[Any, ...]] = []
    for key in small_parents.iter_rows():
        where = pl.all_horizontal(pl.col(p) == v for p, v in zip(parents, key, strict=True))
        kids = (
            frame.filter(where)
            .group_by(level, TIME_COL)
            .agg(pl.col(TARGET_COL).sum(), pl.col(COUNT_COL).sum())
        )
        kid_mins = {r[0]: (r[1], r[2]) for r in mins.filter(where).select(level, _MIN, _AT).rows()}
        pool = _pool(kids, kid_mins, level, threshold, flat)
        parent_id = _id(key)
        for child in sorted(pool):
            rows.append((*key, child, AUTRES))
            if child == AUTRES and not flat:
                continue  # already the parent's autres
            n, month = kid_mins.get(child, (None, None))
            small = n is not None and n < threshold
            why = (
                f"{n} act(s) in {str(month)[:7]}, fewer than {threshold}"
                if small
                else f"joined {AUTRES} so that it reaches {threshold} act(s) every month"
            )
            pooling.pooled.append(
                {
                    "series": f"{parent_id}{SEP}{child}",
                    "into": None if flat else f"{parent_id}{SEP}{AUTRES}",
                    "min_count": n,
                    "month": str(month)[:7] if month is not None else None,
                    "why": why + (" (flat panel: left out, not pooled)" if flat else ""),
                }
            )
        if not flat and set(pool) == set(kids[level]):
            pooling.collapsed.append(parent_id)
    schema: dict[str, pl.DataType] = {c: frame.schema[c] for c in parents}
    schema |= {level: pl.String(), _NEW: pl.String()}
    return pl.DataFrame(rows, schema=schema, orient="row")


def _pool(
    kids: pl.DataFrame,
    kid_mins: dict[str, tuple[int, Any]],
    level: str,
    threshold: int,
    flat: bool,
) -> set[str]:
    """The children of one parent that go to ``autres`` (flat: that are left out)."""
    small = {c for c, (n, _) in kid_mins.items() if n < threshold}
    if flat:
        return small
    children = set(kids[level].to_list())
    pool = small | ({AUTRES} & children)
    rest = sorted(children - pool, key=lambda c: (kid_mins.get(c, (float("inf"), None))[0], c))
    while rest:
        pooled = (
            kids.filter(pl.col(level).is_in(sorted(pool)))
            .group_by(TIME_COL)
            .agg(pl.col(TARGET_COL).sum(), pl.col(COUNT_COL).sum())
        )
        live = pooled.filter(_live())[COUNT_COL]
        if live.is_empty() or live.min() >= threshold:  # type: ignore[operator]
            break
        pool.add(rest.pop(0))
    return pool
