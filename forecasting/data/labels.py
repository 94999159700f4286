"""Display labels of series: the French label of each hierarchy member.

Ingest records, in the panel's metadata key ``spendcast.labels``, a JSON object
``{level: {member: label}}`` for the members that have a label in the code lists (Open DAMIR
and legacy tables, :func:`forecasting.data.codes.level_labels`); tidy files record none, so
their own values are their labels. Training writes each series' label into the bundle's
``series.parquet`` (:func:`add_labels`). A series' label is its last member's
(``total/specialistes/gastro-enterologie-et-hepatologie`` -> ``Gastro-entérologie et
hépatologie``), ``Total`` for the root, and the member itself when no label is known (tidy
files, bundles trained before labels existed: :func:`label_or_member`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

import polars as pl

from forecasting.data.codes import coded_source, level_labels
from forecasting.data.panel import ID_COL, ROOT_ID, SEP, PanelMeta
from forecasting.data.privacy import AUTRES

__all__ = [
    "META_LABELS",
    "LABEL_COL",
    "ROOT_LABEL",
    "Labels",
    "member_labels",
    "labels_kv",
    "panel_labels",
    "series_label",
    "label_or_member",
    "add_labels",
]

META_LABELS = "spendcast.labels"
"""Panel metadata key: JSON ``{level: {member: label}}``."""
LABEL_COL = "label"
ROOT_LABEL = "Total"
AUTRES_LABEL = "Autres (regroupement, secret statistique)"
"""Label of the ``autres`` member that the small-cell rule pools series into (when a code
list has no label of its own for it)."""

Labels = Mapping[str, Mapping[str, str]]
"""Level name -> member -> label."""


def member_labels(
    levels: Sequence[str], members: Mapping[str, Iterable[str]]
) -> dict[str, dict[str, str]]:
    """The code-list labels of the given members, level by level (levels without any: left out).

    Args:
        levels: the hierarchy's level names, top to bottom.
        members: level name -> the members present in the panel.
    """
    out: dict[str, dict[str, str]] = {}
    for level in levels:
        known = {AUTRES: AUTRES_LABEL, **level_labels(level)}
        found = {m: known[m] for m in sorted(set(members.get(level, ()))) if m in known}
        if found:
            out[level] = found
    return out


def labels_kv(panel: pl.DataFrame, levels: Sequence[str], source: str) -> dict[str, str]:
    """The panel metadata entry recording its members' labels (ingest).

    Only panels of Assurance Maladie files get one: a tidy file's values are its labels,
    whatever its columns are called.
    """
    if not coded_source(source):
        return {}
    labels = member_labels(levels, {lv: panel[lv].unique().to_list() for lv in levels})
    return {META_LABELS: json.dumps(labels, ensure_ascii=False, sort_keys=True)} if labels else {}


def panel_labels(meta: PanelMeta) -> dict[str, dict[str, str]]:
    """The labels a panel recorded; for panels ingested before labels were recorded from
    Assurance Maladie files, the code lists' labels of each level."""
    raw = meta.extra.get(META_LABELS)
    if raw:
        parsed = json.loads(raw)
        return {str(lv): {str(k): str(v) for k, v in m.items()} for lv, m in parsed.items()}
    if coded_source(meta.source):
        return {lv: lab for lv in meta.hierarchy if (lab := level_labels(lv))}
    return {}


def series_label(unique_id: str, hierarchy: Sequence[str], labels: Labels) -> str:
    """The label of a series: its last member's label, else the member itself."""
    if unique_id == ROOT_ID:
        return ROOT_LABEL
    parts = unique_id.split(SEP)
    member = parts[-1]
    level = hierarchy[len(parts) - 2] if 0 <= len(parts) - 2 < len(hierarchy) else None
    return labels.get(level, {}).get(member, member) if level is not None else member


def label_or_member(unique_id: str, label: object = None) -> str:
    """A stored label, or (bundles without labels) the series' last member."""
    if isinstance(label, str) and label:
        return label
    return ROOT_LABEL if unique_id == ROOT_ID else unique_id.rsplit(SEP, 1)[-1]


def add_labels(series: pl.DataFrame, meta: PanelMeta) -> pl.DataFrame:
    """``series`` (one row per ``unique_id``) with a ``label`` column."""
    labels = panel_labels(meta)
    names = [series_label(u, meta.hierarchy, labels) for u in series[ID_COL].to_list()]
    return series.with_columns(pl.Series(LABEL_COL, names, dtype=pl.String))
