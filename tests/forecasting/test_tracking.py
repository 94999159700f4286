"""MLflow tracking: complete runs, pyfunc in a fresh process, promotion, failures, cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from mlflow.tracking import MlflowClient

from forecasting import tracking
from forecasting.bundle import depth
from forecasting.data.panel import PanelMeta, write_panel
from forecasting.errors import SpendcastError
from tests.forecasting.tracking_helpers import fast_config, make_result

pytestmark = pytest.mark.slow

NAME = "spend"


def _use_store(root: Path, mp: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{root}/mlflow.db"
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    mp.delenv("SPENDCAST_ARTIFACT_ROOT", raising=False)  # default ./mlruns beside the db
    mp.chdir(root)
    return uri


def _panel(root: Path, seed: int = 0) -> Path:
    """A bottom-level panel file made of the synthetic bundle's bottom series."""
    hist = make_result(seed).bundle.history.filter(
        pl.col("unique_id").map_elements(depth, return_dtype=pl.Int64) == 2
    )
    parts = hist["unique_id"].str.split("/")
    df = hist.with_columns(
        parts.list.get(1).alias("group"), parts.list.get(2).alias("item")
    ).select("group", "item", "ds", pl.col("y").cast(pl.Float64))
    path = root / "panel.parquet"
    write_panel(df, path, PanelMeta(hierarchy=("group", "item")))
    return path


def _fit_returning(result: Any):
    def fit(panel, meta, config, **kw):  # noqa: ANN001, ANN003, ANN202, ARG001
        return result

    return fit


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One store, four runs: first (promoted), worse, better (promoted), other data."""
    root = tmp_path_factory.mktemp("store")
    mp = pytest.MonkeyPatch()
    uri = _use_store(root, mp)
    cfg_file = root / "exp.toml"
    cfg_file.write_text('experiment = "t"\nmodels = ["SeasonalNaive", "AutoETS"]\n')
    outcomes = {}
    cases = [
        ("first", 0.9, "fp-a"),
        ("worse", 1.0, "fp-a"),
        ("better", 0.7, "fp-a"),
        ("other", 0.1, "fp-b"),
    ]
    for label, mase, fp in cases:
        with tracking.training_run(fast_config(), config_path=cfg_file, run_name=label) as run:
            run.log_result(make_result(mase=mase, fingerprint=fp))
            run.register(NAME, promote=True)
        outcomes[label] = run
    yield {"root": root, "uri": uri, "runs": outcomes, "mp": mp}
    mp.undo()


def test_run_logs_params_metrics_and_artifacts(store: dict[str, Any]) -> None:
    client = MlflowClient(store["uri"])
    run = client.get_run(store["runs"]["first"].run_id)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["models"] == "SeasonalNaive,AutoETS"
    assert params["data_fingerprint"] == "fp-a"
    assert params["n_series.total"] == "1"
    assert params["levels"] == "50,80,90,95,99"
    metrics = run.data.metrics
    assert metrics["mase"] == pytest.approx(0.9)
    assert metrics["mase.model.SeasonalNaive"] == pytest.approx(0.9 * 1.2)
    assert "fit_seconds.model.AutoETS" in metrics
    files = {
        f.path
        for d in ("config", "backtest", "charts", "forecasts")
        for f in client.list_artifacts(run.info.run_id, d)
    }
    for expected in [
        "config/exp.toml",
        "backtest/cv.parquet",
        "backtest/selection.parquet",
        "backtest/coverage.parquet",
        "forecasts/forecasts.parquet",
        "charts/metric_by_model.png",
        "charts/fan_total.png",
        "charts/fan_total__a.png",
    ]:
        assert expected in files, expected
    # artifacts live under ./mlruns of the store's folder, not in the cwd of whoever ran it
    exp = client.get_experiment_by_name("t")
    assert exp is not None
    assert exp.artifact_location == (store["root"] / "mlruns").resolve().as_uri()


@pytest.mark.parametrize(
    ("label", "promoted", "why"),
    [
        ("first", True, "no champion"),
        ("worse", False, ">="),
        ("better", True, "<"),
        ("other", False, "other data"),
    ],
)
def test_promotion_rule(store: dict[str, Any], label: str, promoted: bool, why: str) -> None:
    promo = store["runs"][label].promotion
    assert promo.promoted is promoted
    assert why in promo.reason


def test_champion_is_the_best_on_same_data(store: dict[str, Any]) -> None:
    summary = tracking.champion_summary(NAME)
    assert summary is not None
    assert summary["run_id"] == store["runs"]["better"].run_id
    assert summary["metrics"]["mase"] == pytest.approx(0.7)
    assert tracking.champion_summary("nobody") is None


def test_pyfunc_predicts_in_a_fresh_process_without_the_repo(
    store: dict[str, Any], tmp_path: Path
) -> None:
    model_uri = f"models:/{NAME}@champion"
    code = f"""
import sys, json
sys.meta_path = [f for f in sys.meta_path if "__editable__" not in type(f).__module__]
sys.path = [p for p in sys.path if not p.startswith({str(Path.cwd())!r})]
import mlflow, pandas as pd
mlflow.set_tracking_uri({store["uri"]!r})
m = mlflow.pyfunc.load_model({model_uri!r})
out = m.predict(pd.DataFrame({{"unique_id": ["total", "total/a"], "horizon": [3, 2],
                               "level": [80, 80]}}))
import forecasting
plain = m.predict(pd.DataFrame({{"unique_id": ["total"], "horizon": [1]}}))
print(json.dumps({{"plain": list(plain.columns),
                  "cols": list(out.columns), "n": len(out), "file": forecasting.__file__,
                  "ids": sorted(set(out.unique_id))}}))
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["cols"] == ["unique_id", "ds", "mean", "lo_80", "hi_80"]
    assert got["n"] == 5
    assert got["plain"][:3] == ["unique_id", "ds", "mean"] and "hi_99" in got["plain"]
    assert got["ids"] == ["total", "total/a"]
    assert not got["file"].startswith(str(Path(__file__).parents[2])), got["file"]


def test_failed_training_is_marked_failed_and_registry_unchanged(
    store: dict[str, Any], tmp_path: Path
) -> None:
    client = MlflowClient(store["uri"])
    before = {v.version for v in client.search_model_versions(f"name='{NAME}'")}
    champ = tracking.champion_summary(NAME)

    def boom(*a, **kw):  # noqa: ANN002, ANN003, ANN202, ARG001
        raise RuntimeError("fit exploded")

    with pytest.raises(RuntimeError, match="fit exploded"):
        tracking.train(_panel(tmp_path), fast_config(), register=NAME, promote=True, fit_fn=boom)
    exp = client.get_experiment_by_name("t")
    assert exp is not None
    last = client.search_runs([exp.experiment_id], order_by=["start_time DESC"], max_results=1)[0]
    assert last.info.status == "FAILED"
    assert {v.version for v in client.search_model_versions(f"name='{NAME}'")} == before
    assert tracking.champion_summary(NAME) == champ


def test_train_with_bad_panel_opens_no_run(store: dict[str, Any], tmp_path: Path) -> None:
    client = MlflowClient(store["uri"])
    exp = client.get_experiment_by_name("t")
    assert exp is not None
    n = len(client.search_runs([exp.experiment_id]))
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(SpendcastError, match="bad.parquet"):
        tracking.train(bad, fast_config(), fit_fn=_fit_returning(make_result()))
    assert len(client.search_runs([exp.experiment_id])) == n


def test_load_model_falls_back_to_cache_when_store_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use_store(tmp_path, monkeypatch)
    out = tracking.train(
        _panel(tmp_path),
        fast_config(),
        register="m",
        promote=True,
        fit_fn=_fit_returning(make_result(seed=3)),
    )
    cache = tmp_path / "cache"
    first = tracking.load_model("models:/m@champion", cache_dir=cache)
    assert (first.from_cache, first.reason, first.version) == (False, None, "1")
    assert first.run_id == out.run_id
    # the store disappears: a fresh empty database elsewhere and the artifacts removed
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/gone/none.db")
    (tmp_path / "gone").mkdir()
    again = tracking.load_model("models:/m@champion", cache_dir=cache)
    assert again.from_cache is True
    assert again.reason and "cached copy" in again.reason
    assert again.version == "1" and again.run_id == out.run_id
    assert again.bundle.forecasts.equals(first.bundle.forecasts)
    # an unreachable tracking server fails fast (bounded retries) and the cache serves
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    t0 = time.perf_counter()
    down = tracking.load_model("models:/m@champion", cache_dir=cache)
    assert down.from_cache and down.reason and "127.0.0.1:9" in down.reason
    assert time.perf_counter() - t0 < 30
    with pytest.raises(SpendcastError, match="no cached copy"):
        tracking.load_model("models:/m@champion", cache_dir=tmp_path / "empty-cache")


def test_compare_runs_sorted_by_primary_metric(store: dict[str, Any], tmp_path: Path) -> None:
    table, shown = tracking.compare_runs("t", tmp_path / "c.png")
    assert shown[0] == "mase"
    assert table["mase"].to_list() == sorted(table["mase"].to_list())
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SpendcastError, match="no experiment"):
        tracking.compare_runs("nope", tmp_path / "d.png")
    assert not (tmp_path / "d.png").exists()


def test_real_fit_is_logged_and_served_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real ``fit`` on a generated panel: per-level metrics logged, bundle round-trips."""
    pytest.importorskip("forecasting.training")
    from forecasting.training.pipeline import fit
    from tests.panels import make_panel

    _use_store(tmp_path, monkeypatch)
    df, meta = make_panel(n_fam=2, n_exe=2, months=48, seed=4)
    path = tmp_path / "p.parquet"
    write_panel(df, path, meta)
    captured: dict[str, Any] = {}

    def real_fit(*args: Any, **kw: Any) -> Any:
        captured["result"] = fit(*args, **kw)
        return captured["result"]

    out = tracking.train(path, fast_config(), register="real", promote=True, fit_fn=real_fit)
    result = captured["result"]
    run = MlflowClient(tracking.tracking_uri()).get_run(out.run_id)
    for level, n in result.n_series.items():
        assert run.data.params[f"n_series.{level}"] == str(n)
        assert f"mase.level.{level}" in run.data.metrics
    assert run.data.metrics["mase"] == pytest.approx(result.metrics["mase"])
    assert run.data.params["data_fingerprint"] == result.bundle.meta.data_fingerprint
    loaded = tracking.load_model("models:/real@champion")
    assert loaded.run_id == out.run_id
    assert loaded.bundle.meta.run_id == out.run_id
    assert loaded.bundle.forecast().equals(result.bundle.forecast())
    # the fitted conditioning state travels with the model, and budget reliability is logged
    assert loaded.bundle.conditioning is not None
    assert loaded.bundle.conditioning.doc.keys() == result.bundle.conditioning.doc.keys()
    names = {
        f.path
        for d in ("backtest", "charts")
        for f in MlflowClient(tracking.tracking_uri()).list_artifacts(out.run_id, d)
    }
    assert result.budgets is not None
    assert "backtest/budget_reliability.parquet" in names
    assert "charts/budget_reliability.png" in names
    assert run.data.metrics["budget_brier"] == pytest.approx(result.budgets.brier)


@pytest.mark.parametrize(
    ("uri", "version", "alias"),
    [
        (f"models:/{NAME}/latest", "4", None),  # the highest version ("other")
        (f"models:/{NAME}/2", "2", None),
        (f"models:/{NAME}@champion", "3", "champion"),
        ("runs:/{better}/model", None, None),
        ("{local}", None, None),
    ],
)
def test_every_mlflow_uri_form_loads(
    store: dict[str, Any], tmp_path: Path, uri: str, version: str | None, alias: str | None
) -> None:
    better = store["runs"]["better"].run_id
    local = make_result(seed=5).bundle.save(tmp_path / "bundle")
    loaded = tracking.load_model(uri.format(better=better, local=local))
    assert (loaded.version, loaded.alias) == (version, alias)
    if uri.startswith("runs:/"):
        assert loaded.run_id == better
    if version == "4":
        assert loaded.run_id == store["runs"]["other"].run_id


def test_detect_and_serve_take_models_latest(store: dict[str, Any], tmp_path: Path) -> None:
    """`detect --model models:/NAME/latest` and SPENDCAST_MODEL_URI=models:/NAME/latest work."""
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from cli.main import app
    from service.config import Settings
    from service.main import create_app

    fc = make_result().bundle.forecasts.group_by("unique_id").head(1)
    obs = tmp_path / "obs.csv"
    fc.select("unique_id", "ds", pl.col("mean").alias("y")).write_csv(obs)
    r = CliRunner().invoke(app, ["detect", str(obs), "--model", f"models:/{NAME}/latest"])
    assert r.exit_code == 0, r.output
    assert "flagged of" in r.output
    r = CliRunner().invoke(app, ["detect", str(obs), "--model", f"models:/{NAME}"])
    assert r.exit_code == 2 and "models:/NAME/latest" in r.output, r.output
    settings = Settings(
        model_uri=f"models:/{NAME}/latest",
        database_url=f"sqlite:///{tmp_path / 'store.db'}",
        cache_dir=tmp_path / "cache",
    )
    with TestClient(create_app(settings)) as client:
        for _ in range(200):
            if client.get("/readyz").status_code == 200:
                break
            time.sleep(0.05)
        model = client.get("/v1/model").json()
    assert (model["name"], model["version"]) == (NAME, "4")
