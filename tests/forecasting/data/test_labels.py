"""forecasting.data.labels: French labels recorded at ingest, carried into the bundle."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from forecasting.data import codes, synth
from forecasting.data.ingest import ingest
from forecasting.data.labels import (
    META_LABELS,
    add_labels,
    label_or_member,
    panel_labels,
    series_label,
)
from forecasting.data.panel import PanelMeta, read_panel
from forecasting.training.config import TrainConfig
from forecasting.training.pipeline import fit
from tests.panels import make_panel

GASTRO = "gastro-enterologie-et-hepatologie"


@pytest.mark.parametrize(
    ("level", "member", "label"),
    [
        ("executant", GASTRO, "Gastro-entérologie et hépatologie"),
        ("prescripteur", "medecine-generale", "Médecine générale"),
        ("executant", "masseur-kinesitherapeute", "Masseur-kinésithérapeute"),
        ("executant", codes.UNKNOWN, "Non renseigné ou inconnu"),
        ("famille", "pharmacie", "Médicaments et honoraires de pharmacie"),
        ("serie", "111111-c-omnipraticiens", "C Omnipraticiens"),
    ],
)
def test_code_lists_give_french_labels(level: str, member: str, label: str) -> None:
    assert codes.level_labels(level)[member] == label


def test_every_actor_slug_has_a_label() -> None:
    spe, act = codes.specialties(), codes.activities()
    for table in (spe, act):
        assert table["libelle"].null_count() == 0
        assert (table["libelle"].str.len_chars() > 2).all()
    slugs = set(spe["slug"].to_list()) | set(act["slug"].to_list())
    assert slugs <= set(codes.level_labels("executant"))
    assert codes.level_labels("Concession") == {}


def _labels(path: Path) -> dict[str, dict[str, str]] | None:
    raw = (pq.read_schema(path).metadata or {}).get(META_LABELS.encode())
    return None if raw is None else json.loads(raw.decode())


def test_ingest_records_the_labels_of_open_damir_members(tmp_path: Path) -> None:
    synth.generate(tmp_path / "raw", start="2024-01", end="2024-01", rows_per_month=1000, seed=1)
    out = tmp_path / "p.parquet"
    ingest([tmp_path / "raw"], out)
    panel, meta = read_panel(out)
    labels = _labels(out)
    assert labels is not None and set(labels) == {"famille", "executant"}
    for level in ("famille", "executant"):
        assert set(labels[level]) == set(panel[level].unique().to_list())
    assert labels["famille"]["pharmacie"] == "Médicaments et honoraires de pharmacie"
    assert panel_labels(meta) == labels


def test_tidy_files_keep_their_own_values_even_with_coded_column_names(tmp_path: Path) -> None:
    src = tmp_path / "t.csv"
    pl.DataFrame(
        {"month": ["2024-01", "2024-02"] * 2, "famille": ["pharmacie"] * 2 + ["Other"] * 2}
        | {"cost": [1.0, 2.0, 3.0, 4.0]}
    ).write_csv(src)
    out = tmp_path / "t.parquet"
    ingest([src], out, date_col="month", value_col="cost", hierarchy="famille")
    assert _labels(out) is None
    _, meta = read_panel(out)
    assert series_label("total/pharmacie", meta.hierarchy, panel_labels(meta)) == "pharmacie"


def test_panels_without_recorded_labels() -> None:
    old = PanelMeta(hierarchy=("famille", "executant"), source="open-damir:A202401.csv.gz")
    ids = ["total", "total/specialistes", f"total/specialistes/{GASTRO}", "total/x/y"]
    frame = add_labels(pl.DataFrame({"unique_id": ids}), old)
    assert frame["label"].to_list() == [
        "Total",
        "Consultations et visites de spécialistes",
        "Gastro-entérologie et hépatologie",
        "y",
    ]
    tidy = PanelMeta(hierarchy=("famille", "executant"), source="tidy:x.csv")
    assert add_labels(pl.DataFrame({"unique_id": ids}), tidy)["label"].to_list()[1:] == [
        "specialistes",
        GASTRO,
        "y",
    ]


@pytest.mark.parametrize(
    ("uid", "stored", "want"),
    [
        ("total", None, "Total"),
        ("total/a/b c", None, "b c"),
        ("total/a", "", "a"),
        ("total/a", "A", "A"),
    ],
)
def test_label_or_member(uid: str, stored: str | None, want: str) -> None:
    assert label_or_member(uid, stored) == want


def test_training_writes_labels_into_the_bundle() -> None:
    panel, _ = make_panel(n_fam=2, n_exe=2, months=30, seed=3)
    panel = panel.with_columns(
        famille=pl.col("famille").replace({"F0": "pharmacie", "F1": "specialistes"}),
        executant=pl.col("executant").replace({"E0": GASTRO, "E1": "pharmacie"}),
    )
    meta = PanelMeta(hierarchy=("famille", "executant"), source="open-damir:A.csv")
    config = TrainConfig(models=["SeasonalNaive"], horizon=3, n_paths=50, levels=[80])
    labels = dict(fit(panel, meta, config).bundle.series.select("unique_id", "label").iter_rows())
    assert labels["total"] == "Total"
    assert labels["total/pharmacie"] == "Médicaments et honoraires de pharmacie"
    assert labels[f"total/specialistes/{GASTRO}"] == "Gastro-entérologie et hépatologie"
