"""`spendcast train` and `spendcast experiment run|compare`: exit codes, messages, output."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from forecasting.data.panel import write_panel
from tests.panels import make_panel

runner = CliRunner()
FAST = 'models = ["SeasonalNaive", "AutoETS"]\nwindows = 3\nn_paths = 100\nhorizon = 6\n'


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def panel(store: Path) -> Path:
    df, meta = make_panel(n_fam=2, n_exe=2, months=48, seed=1)
    path = store / "panel.parquet"
    write_panel(df, path, meta)
    return path


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "missing.parquet"], "missing.parquet"),
        (["train", "{panel}", "--config", "nope.toml"], "nope.toml"),
        (["train", "{panel}", "--config", "{bad_toml}"], "colour"),
        (["train", "{panel}", "--levels", "80,high"], "levels"),
        (["train", "{panel}", "--engine", "spark"], "engine"),
        (["train", "{panel}", "--horizon", "0"], "horizon"),
        (["experiment", "run", "{nodata_toml}"], "data"),
        (["experiment", "run", "{missing_data_toml}"], "gone.parquet"),
        (["experiment", "compare", "--experiment", "never"], "never"),
    ],
)
def test_bad_input_exits_2_with_message(
    store: Path, panel: Path, args: list[str], needle: str
) -> None:
    (store / "bad.toml").write_text('colour = "blue"\n')
    (store / "nodata.toml").write_text(FAST)
    (store / "missingdata.toml").write_text(FAST + 'data = "../gone.parquet"\n')
    subs = {
        "{panel}": str(panel),
        "{bad_toml}": str(store / "bad.toml"),
        "{nodata_toml}": str(store / "nodata.toml"),
        "{missing_data_toml}": str(store / "missingdata.toml"),
    }
    result = runner.invoke(app, [subs.get(a, a) for a in args])
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert not (store / "mlruns").exists() or not any((store / "mlruns").rglob("MLmodel"))


@pytest.mark.slow
def test_train_then_same_again_is_not_promoted(store: Path, panel: Path) -> None:
    pytest.importorskip("forecasting.training")
    cfg = store / "fast.toml"
    cfg.write_text(FAST + 'experiment = "cli"\ndata = "panel.parquet"\n')
    first = runner.invoke(
        app, ["train", str(panel), "--config", str(cfg), "--register", "m", "--promote"]
    )
    assert first.exit_code == 0, first.output
    assert "m v1" in first.output and "promoted: no champion yet" in first.output
    again = runner.invoke(app, ["experiment", "run", str(cfg), "--register", "m", "--promote"])
    assert again.exit_code == 0, again.output
    assert "m v2" in again.output and "not promoted" in again.output
    cmp = runner.invoke(app, ["experiment", "compare", "--experiment", "cli", "--out", "c.png"])
    assert cmp.exit_code == 0, cmp.output
    assert (store / "c.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "name",
    [
        "baseline-seasonal-naive",
        "ets",
        "selection-ensemble",
        "selection-calendar-mint",
    ],
)
def test_experiment_files_are_valid_configs(name: str) -> None:
    from forecasting.training.config import load_config

    path = Path(__file__).parents[2] / "experiments" / f"{name}.toml"
    cfg = load_config(path)
    assert cfg.data == "../demo/panel.parquet"
    assert (path.parent / cfg.data).resolve() == (path.parents[1] / "demo" / "panel.parquet")
    assert cfg.reconciliation == "mint_shrink" and cfg.experiment == "spendcast"
    assert cfg.description
