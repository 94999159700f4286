"""`spendcast detect`: exit codes 0/2/3, --out, bad input naming file, line and column."""

from __future__ import annotations

import polars as pl
import pytest
from typer.testing import CliRunner

from cli.main import app
from forecasting.monitoring.forecast import index_bundle
from forecasting.monitoring.judge import DETECT_COLUMNS
from tests.service.synthetic import make_bundle

runner = CliRunner()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    bundle = make_bundle(seed=3)
    return bundle, bundle.save(tmp_path_factory.mktemp("model") / "bundle")


def _observed(bundle, factor_total: float = 1.0) -> pl.DataFrame:
    """Three months of every series at what monitoring expects: its own model's forecasts
    (the stored forecasts are reconciled, and judging is centred on each series' own model)."""
    own = index_bundle(bundle).conditioners
    fc = (
        bundle.forecasts.sort("unique_id", "ds")
        .with_columns(pl.int_range(pl.len()).over("unique_id").alias("k"))
        .filter(pl.col("k") < 3)
    )
    expected = [
        max(float(f[k]), 0.0) if (f := own[u].forecast(())) is not None else m
        for u, m, k in zip(fc["unique_id"], fc["mean"], fc["k"], strict=True)
    ]
    return fc.with_columns(pl.Series("mean", expected)).select(
        "unique_id",
        pl.col("ds").dt.strftime("%Y-%m").alias("ds"),
        pl.when(pl.col("unique_id") == "total")
        .then(pl.col("mean") * factor_total)
        .otherwise(pl.col("mean"))
        .alias("y"),
    )


def test_clean_file_exits_0_and_writes_every_judgement(model_dir, tmp_path):
    bundle, path = model_dir
    obs = tmp_path / "obs.csv"
    _observed(bundle).write_csv(obs)
    out = tmp_path / "flags" / "flags.csv"
    r = runner.invoke(
        app, ["detect", str(obs), "--model", str(path), "--out", str(out), "--fail-on-anomaly"]
    )
    assert r.exit_code == 0, r.output
    assert "0 flagged of 18" in r.output
    flags = pl.read_csv(out, try_parse_dates=True)
    assert flags.columns == list(DETECT_COLUMNS) and flags.height == 18
    assert set(flags["status"]) == {"EXPECTED"}
    assert flags.sort("unique_id", "ds").group_by("unique_id").agg(pl.col("conditioned_on"))[
        "conditioned_on"
    ].to_list()[0] == [0, 1, 2]  # each month one step after the last


def test_flagged_file_exits_3_with_fail_on_anomaly(model_dir, tmp_path):
    bundle, path = model_dir
    obs = tmp_path / "obs.parquet"
    _observed(bundle, factor_total=3.0).write_parquet(obs)
    r = runner.invoke(app, ["detect", str(obs), "--model", str(path), "--fail-on-anomaly"])
    assert r.exit_code == 3, r.output
    assert "total" in r.output and "flagged of 18" in r.output
    r = runner.invoke(app, ["detect", str(obs), "--model", str(path)])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("unique_id,ds,y\ntotal,2024-01,1.0\ntotal,2024-02,abc\n", 3, "y"),
        ("unique_id,ds,y\ntotal,Jan,1.0\n", 2, "ds"),
        ("unique_id,month,y\ntotal,2024-01,1.0\n", 1, "ds"),
        ("unique_id,ds,y,as_of\ntotal,2024-01,1.0,2024-01\ntotal,2024-02,2.0,xx\n", 3, "as_of"),
    ],
)
def test_bad_file_exits_2_naming_line_and_column(model_dir, tmp_path, text, line, column):
    _, path = model_dir
    obs = tmp_path / "bad.csv"
    obs.write_text(text)
    out = tmp_path / "flags.csv"
    r = runner.invoke(app, ["detect", str(obs), "--model", str(path), "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert "bad.csv" in r.output and f"line {line}" in r.output and column in r.output
    assert not out.exists()  # nothing written on bad input


def test_url_posts_to_a_running_service_with_the_same_verdicts(model_dir, tmp_path):
    from pydantic import SecretStr

    from service.config import Settings
    from service.main import create_app
    from tests.service.conftest import KEY, sqlite_store
    from tests.service.server import running
    from tests.service.synthetic import fake_loader

    bundle, path = model_dir
    obs = tmp_path / "obs.csv"
    _observed(bundle, factor_total=3.0).write_csv(obs)
    local, remote = tmp_path / "local.csv", tmp_path / "remote.csv"
    r = runner.invoke(app, ["detect", str(obs), "--model", str(path), "--out", str(local)])
    assert r.exit_code == 0, r.output
    settings = Settings(
        database_url=sqlite_store(tmp_path / "store.db"),
        api_keys=SecretStr(KEY),
        cache_dir=tmp_path / "cache",
        log_level="WARNING",
    )
    with running(create_app(settings, loader=fake_loader(bundle))) as base:
        args = ["detect", str(obs), "--url", base, "--out", str(remote), "--fail-on-anomaly"]
        r = runner.invoke(app, [*args, "--api-key", KEY])
        assert r.exit_code == 3, r.output
        denied = runner.invoke(app, [*args, "--api-key", "wrong"])
        assert denied.exit_code == 1 and "401" in denied.output
    a, b = pl.read_csv(local), pl.read_csv(remote)
    assert a.columns == b.columns and a.height == b.height == 18
    for col in ("expected", "lo", "hi", "conditioned_on"):
        assert a[col].to_list() == pytest.approx(b[col].to_list(), rel=1e-9)
    assert a["status"].to_list() == b["status"].to_list()
