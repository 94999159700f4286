"""Care basis: the processing x care triangle at ingest and chain-ladder completion.

The synthetic generator pays every care month over processing lags with known shares
(``lags.csv``, DOMAIN.md's 58 % / 87 % / ... / 99.5 %) and integer cents (largest remainder),
and knows the complete amounts (``truth.parquet``). Its lag split has no noise, only the
rounding to the cent, so the chain ladder must find the shares to ~1e-6 and completion must
recover the truth to ~1e-6 relative (a cent on amounts of thousands of euros or more),
while the raw recent months miss 0.5 % to 42 % of their amount.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow.tracking import MlflowClient

from forecasting import tracking
from forecasting.bundle import Bundle
from forecasting.data import synth
from forecasting.data.ingest import ingest
from forecasting.data.panel import META_TRIANGLE, PanelMeta, read_panel, triangle_path, write_panel
from forecasting.monitoring import completion
from forecasting.monitoring.completion import complete, estimate, load_triangle, paid_share
from forecasting.training.pipeline import fit
from tests.forecasting.tracking_helpers import fast_config
from tests.service.synthetic import make_bundle

LEVELS = ("famille", "executant")
REL_TOL = 1e-6


@pytest.fixture(scope="module")
def care(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("care")
    raw = root / "raw"
    synth.generate(raw, start="2020-01", end="2022-12", rows_per_month=1000, seed=3)
    out = root / "panel.parquet"
    report = ingest([raw], out, basis="care")
    panel, meta = read_panel(out)
    return {
        "root": root,
        "raw": raw,
        "out": out,
        "report": report,
        "panel": panel,
        "meta": meta,
        "triangle": load_triangle(meta, out),
        "truth": pl.read_parquet(raw / "truth.parquet").select(
            *LEVELS, "ds", pl.col("y_reimbursed").alias("truth")
        ),
        "lags": pl.read_csv(raw / "lags.csv").with_columns(pl.col("paid_share").cum_sum()),
    }


def test_triangle_written_beside_the_panel_and_sums_to_the_panel(care: dict[str, Any]) -> None:
    out, meta, tri, panel = care["out"], care["meta"], care["triangle"], care["panel"]
    assert triangle_path(out).exists()
    assert Path(meta.extra[META_TRIANGLE]) == triangle_path(out).resolve()
    assert care["report"].triangle == str(triangle_path(out))
    assert tri.columns == [*LEVELS, "ds", "processing_ds", "y"]
    assert tri["processing_ds"].min() == dt.date(2020, 1, 1)
    assert tri["processing_ds"].max() == dt.date(2022, 12, 1)
    assert (tri["processing_ds"] >= tri["ds"]).all()
    sums = tri.group_by(*LEVELS, "ds").agg(pl.col("y").sum().alias("t"))
    joined = panel.join(sums, on=[*LEVELS, "ds"], how="full", coalesce=True)
    # every panel cell comes from the triangle (to the cent; gap-filled zeros have no cell)
    diff = (joined["y"].fill_null(0.0) - joined["t"].fill_null(0.0)).abs()
    assert diff.max() < 0.005
    per_month = joined.group_by("ds").agg(pl.col("y").sum(), pl.col("t").sum())
    assert ((per_month["y"] - per_month["t"]).abs() < 0.005).all()


def test_flux_ingest_writes_the_same_triangle(care: dict[str, Any]) -> None:
    """Both bases keep both months: the flux-basis triangle is the care-basis one."""
    out = care["root"] / "flux.parquet"
    report = ingest([care["raw"]], out, basis="flux", cache_dir=care["root"] / "cache2")
    panel, meta = read_panel(out)
    assert Path(meta.extra[META_TRIANGLE]) == triangle_path(out).resolve()
    assert report.triangle == str(triangle_path(out))
    keys = [*LEVELS, "ds", "processing_ds"]
    flux_tri = pl.read_parquet(triangle_path(out)).sort(keys)
    care_tri = care["triangle"].sort(keys)
    assert flux_tri.select(keys).equals(care_tri.select(keys))
    assert (flux_tri["y"] - care_tri["y"]).abs().max() < 0.005
    # the flux panel is the triangle summed by processing month (plus unknown care months)
    by_proc = flux_tri.group_by("processing_ds").agg(pl.col("y").sum()).sort("processing_ds")
    flux_tot = panel.group_by("ds").agg(pl.col("y").sum()).sort("ds")
    assert (flux_tot["y"] >= by_proc["y"] - 0.005).all()
    # a re-run reads the per-file aggregates from the cache and writes the same triangle
    again = ingest([care["raw"]], out, basis="flux", cache_dir=care["root"] / "cache2")
    assert all(f["cached"] for f in again.files)
    assert pl.read_parquet(triangle_path(out)).sort(keys).equals(flux_tri)


def test_estimated_paid_shares_match_the_true_lags(care: dict[str, Any]) -> None:
    frame, report = estimate(care["triangle"], care["meta"])
    assert report.max_age == 24
    true_cum = dict(care["lags"].iter_rows())
    total = {a: s for _, a, s, _ in frame.filter(pl.col("unique_id") == "total").iter_rows()}
    assert total[0] == pytest.approx(0.583, abs=1e-4)
    assert total[1] == pytest.approx(0.870, abs=1e-4)
    assert total[12] == pytest.approx(0.995, abs=1e-4)
    for a in range(24):  # the last age is the reference (share 1 by construction)
        assert total[a] == pytest.approx(true_cum[a] / true_cum[24], abs=1e-5)
    # every series at every level, each age; bottom shares also match the truth
    ids = set(frame["unique_id"].unique().to_list())
    assert "total" in ids and len(ids) > 30
    bottom = frame.filter(pl.col("unique_id").str.count_matches("/") == 2)
    ref = pl.DataFrame(
        {"age": list(range(25)), "ref": [true_cum[a] / true_cum[24] for a in range(25)]}
    )
    err = bottom.join(ref, on="age").select((pl.col("paid_share") - pl.col("ref")).abs().max())
    assert err.item() < 1e-3
    assert (frame["paid_share_sd"] >= 0).all()
    assert paid_share(frame, "total", 0)[0] == pytest.approx(total[0])
    assert paid_share(frame, "total", 25) == (1.0, 0.0)
    assert paid_share(None, "total", 0) == (1.0, 0.0)
    assert paid_share(frame, "total/unknown", 0) == (1.0, 0.0)
    # back-test by age: small (rounding only), and ordered (more paid -> better)
    mape = report.mape_by_age
    assert set(mape) == set(range(24))
    assert mape[0] < 0.02 and mape[12] < mape[0]


def test_completed_recent_care_months_match_the_truth(care: dict[str, Any]) -> None:
    panel, tri, meta = care["panel"], care["triangle"], care["meta"]
    done, frame, report = complete(panel, tri, meta)
    assert frame is not None and report.applied
    assert report.months_completed == 24 and report.dropped_truncated > 0
    assert done["ds"].min() == dt.date(2020, 1, 1)  # left-truncated care months dropped
    j = (
        done.rename({"y": "completed"})
        .join(panel, on=[*LEVELS, "ds"])
        .join(care["truth"], on=[*LEVELS, "ds"])
        .filter(pl.col("ds") >= dt.date(2021, 1, 1), pl.col("truth") > 0)
        .with_columns(
            ((pl.col("completed") / pl.col("truth")) - 1).abs().alias("err"),
            ((pl.col("y") / pl.col("truth")) - 1).abs().alias("raw_err"),
        )
    )
    recent = j.filter(pl.col("ds") >= dt.date(2022, 6, 1))
    assert recent["raw_err"].min() > 0.004  # the raw recent months are visibly short
    assert recent["err"].max() < 1e-3
    last = recent.filter(pl.col("ds") == dt.date(2022, 12, 1))
    assert last["raw_err"].mean() == pytest.approx(1 - 0.583, abs=0.01)
    monthly = j.group_by("ds").agg(pl.col("completed").sum(), pl.col("truth").sum())
    rel = ((monthly["completed"] / monthly["truth"]) - 1).abs()
    assert rel.max() < REL_TOL


def test_flux_and_missing_triangle(care: dict[str, Any]) -> None:
    panel, meta = care["panel"], care["meta"]
    flux = PanelMeta(hierarchy=meta.hierarchy, basis="flux")
    same, frame, report = complete(panel, care["triangle"], flux)
    assert same is panel and frame is None and not report.applied
    with pytest.warns(UserWarning, match="triangle"):
        same, frame, report = complete(panel, None, meta)
    assert same is panel and frame is None and report.reason == "no triangle"


@settings(max_examples=20, deadline=None)
@given(
    first=st.floats(0.5, 1.0),  # age-0 share >= 0.5 / 5.5 (above completion.MIN_SHARE)
    steps=st.lists(st.floats(0.01, 1.0), min_size=2, max_size=5),
    ultimates=st.lists(st.floats(1e3, 1e6), min_size=8, max_size=14),
)
def test_chain_ladder_recovers_any_noise_free_pattern(
    first: float, steps: list[float], ultimates: list[float]
) -> None:
    """Invariant: a triangle paid with fixed shares gives back those shares and the ultimates."""
    cum = np.cumsum([first, *steps]) / np.sum([first, *steps])
    A = len(cum)
    inc = np.diff(np.concatenate([[0.0], cum]))
    months = [dt.date(2020 + i // 12, i % 12 + 1, 1) for i in range(len(ultimates))]
    rows = []
    for c, (m, u) in enumerate(zip(months, ultimates, strict=True)):
        for a in range(A):
            if c + a < len(months):
                rows.append(("F", "E", m, months[c + a], u * inc[a]))
    tri = pl.DataFrame(
        rows, schema=[*LEVELS, "ds", "processing_ds", "y"], orient="row"
    ).with_columns(pl.col("famille", "executant").cast(pl.String))
    meta = PanelMeta(hierarchy=LEVELS, basis="care")
    frame, _ = estimate(tri, meta, max_age=A - 1, backtest=False)
    for uid in ("total", "total/F", "total/F/E"):
        got = frame.filter(pl.col("unique_id") == uid).sort("age")["paid_share"].to_numpy()
        np.testing.assert_allclose(got, cum, rtol=1e-9)
    panel = tri.group_by(*LEVELS, "ds").agg(pl.col("y").sum()).sort("ds")
    done, _, _ = complete(panel, tri, meta, max_age=A - 1, backtest=False)
    np.testing.assert_allclose(done.sort("ds")["y"].to_numpy(), ultimates, rtol=1e-9)


def test_bundle_round_trips_completion(tmp_path: Path) -> None:
    b = make_bundle(seed=0, horizon=6, n_paths=50)
    assert b.completion is None
    old = Bundle.load(b.save(tmp_path / "old"))
    assert old.completion is None
    b.completion = pl.DataFrame(
        {"unique_id": b.ids, "age": [0] * len(b.ids), "paid_share": [0.6] * len(b.ids)}
    ).with_columns(pl.lit(0.01).alias("paid_share_sd"))
    back = Bundle.load(b.save(tmp_path / "new"))
    assert back.completion is not None and back.completion.equals(b.completion)
    assert paid_share(back.completion, b.ids[0], 0) == (0.6, 0.01)


def _small(care: dict[str, Any], root: Path) -> Path:
    """Two familles of the synthetic care panel (and their triangle), written as a panel."""
    fams = ["generalistes", "pharmacie"]
    keep = pl.col("famille").is_in(fams)
    panel, meta = care["panel"].filter(keep), care["meta"]
    assert panel["famille"].n_unique() == 2
    out = root / "small.parquet"
    care["triangle"].filter(keep).write_parquet(triangle_path(out))
    extra = {k: v for k, v in meta.extra.items() if k != META_TRIANGLE}
    write_panel(panel, out, PanelMeta(hierarchy=meta.hierarchy, basis="care", extra=extra))
    return out


def test_care_basis_training_completes_and_logs(
    care: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: panel + triangle (by name convention) -> fit -> MLflow run -> bundle."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)
    out = _small(care, tmp_path)
    cfg = fast_config(models=["SeasonalNaive"], windows=3, n_paths=50)
    res = tracking.train(out, cfg, register="care", promote=True)
    run = MlflowClient(tracking.tracking_uri()).get_run(res.run_id)
    assert run.data.params["completion"] == "applied"
    m = run.data.metrics
    assert m["completion_months_completed"] == 24
    assert 0 <= m["completion_mape_age0"] < 0.05
    arts = [a.path for a in MlflowClient().list_artifacts(res.run_id, "completion")]
    assert "completion/factors.parquet" in arts and "completion/backtest.parquet" in arts
    bundle = tracking.load_model("models:/care@champion", cache_dir=tmp_path / "c").bundle
    comp = bundle.completion
    assert comp is not None
    assert set(comp["unique_id"].unique().to_list()) >= set(bundle.ids)
    share0 = paid_share(comp, "total", 0)[0]
    assert share0 == pytest.approx(0.583, abs=0.01)
    # the history holds completed (ultimate) amounts: the last care month is not 42 % short
    hist = bundle.history.filter(pl.col("unique_id") == "total").sort("ds")
    truth = (
        care["truth"]
        .filter(pl.col("famille").is_in(["generalistes", "pharmacie"]))
        .group_by("ds")
        .agg(pl.col("truth").sum())
    )
    last = hist.join(truth, on="ds").filter(pl.col("ds") == dt.date(2022, 12, 1))
    assert last["y"][0] == pytest.approx(last["truth"][0], rel=1e-4)


def test_care_panel_without_triangle_trains_with_a_warning(care: dict[str, Any]) -> None:
    fams = pl.col("famille") == "pharmacie"
    panel = care["panel"].filter(fams, pl.col("ds") >= dt.date(2019, 1, 1))
    meta = PanelMeta(hierarchy=care["meta"].hierarchy, basis="care")
    with pytest.warns(UserWarning, match="triangle"):
        res = fit(panel, meta, fast_config(models=["SeasonalNaive"], windows=3, n_paths=50))
    assert res.bundle.completion is None
    assert res.completion is not None and res.completion.reason == "no triangle"
    assert completion.paid_share(res.bundle.completion, "total", 0) == (1.0, 0.0)


def test_thin_series_borrow_the_parent_pattern() -> None:
    """Noisy claims (Poisson counts, exponential amounts, lags drawn from the true shares):
    pooling toward the parent brings thin series closer to the truth than their own
    chain ladder. (The plug-in standard error of a shrunk thin series understates its
    error, as empirical Bayes with an estimated tau2 does; only the large ones are checked.)"""
    rng = np.random.default_rng(0)
    A = 13
    sh = np.array(synth.LAG_SHARES[:A])
    sh = sh / sh.sum()
    true0 = sh[0]
    months = [dt.date(2018 + i // 12, i % 12 + 1, 1) for i in range(48)]
    sizes = {"big": 1e5, "mid": 3e3, "small": 300, "tiny": 30}
    rows = []
    for fam in ("F1", "F2"):
        for name, size in sizes.items():
            for c, m in enumerate(months):
                n = rng.poisson(size)
                lags = rng.choice(A, size=n, p=sh)
                inc = np.bincount(lags, weights=rng.exponential(50, size=n), minlength=A)
                rows += [
                    (fam, name, m, months[c + a], float(inc[a]))
                    for a in range(A)
                    if c + a < len(months)
                ]
    tri = pl.DataFrame(rows, schema=[*LEVELS, "ds", "processing_ds", "y"], orient="row")
    meta = PanelMeta(hierarchy=LEVELS, basis="care")
    pooled, _ = estimate(tri, meta, max_age=A - 1, backtest=False)
    cube = completion._cube(tri, LEVELS, A - 1)
    own, _ = completion._shares(*completion._factors(cube.cum))
    own0 = dict(zip(cube.ids, own[:, 0], strict=True))
    thin = [f"total/{f}/{n}" for f in ("F1", "F2") for n in ("small", "tiny")]
    err_own = sum(abs(own0[u] - true0) for u in thin)
    err_pooled = sum(abs(paid_share(pooled, u, 0)[0] - true0) for u in thin)
    assert err_pooled < 0.7 * err_own
    # the large series keep their own pattern, and are covered by their standard error
    for u in ("total", "total/F1", "total/F1/big", "total/F2/big"):
        share, sd = paid_share(pooled, u, 0)
        assert 0 < sd < 0.01 and abs(share - true0) <= 3 * sd, u
