"""Aggregation and reconciliation: coherent, non-negative, ordered bounds."""

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecasting.data.panel import PanelMeta
from forecasting.training.hierarchy import aggregate_panel, reconcile, reconcile_or_fall_back
from tests.panels import make_panel


def _random_panel(sizes: list[int], months: int, seed: int) -> tuple[pl.DataFrame, PanelMeta]:
    rng = np.random.default_rng(seed)
    ds = pl.date_range(dt.date(2020, 1, 1), dt.date(2030, 1, 1), "1mo", eager=True)[:months]
    rows = []
    for a in range(sizes[0]):
        for b in range(sizes[1]):
            rows.append(
                pl.DataFrame(
                    {"a": f"a{a}", "b": f"b{b}", "ds": ds, "y": rng.gamma(2.0, 50.0, months)}
                )
            )
    return pl.concat(rows), PanelMeta(hierarchy=("a", "b"))


def test_aggregate_names_levels_and_sums() -> None:
    panel, meta = make_panel(n_fam=2, n_exe=3, months=24)
    y, hier = aggregate_panel(panel, meta)
    assert hier.ids[0] == "total"
    assert set(hier.tags) == {"total", "famille", "executant"}
    assert len(hier.tags["executant"]) == 6 and len(hier.bottom) == 6
    tot = y.filter(pl.col("unique_id") == "total")["y"].to_numpy()
    assert np.allclose(tot, panel.group_by("ds").agg(pl.col("y").sum()).sort("ds")["y"])
    f0 = y.filter(pl.col("unique_id") == "total/F0")["y"].sum()
    assert f0 == pytest.approx(panel.filter(pl.col("famille") == "F0")["y"].sum())


@settings(max_examples=15, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 4), min_size=2, max_size=2),
    seed=st.integers(0, 10_000),
    method=st.sampled_from(["mint_shrink", "wls_var", "bottom_up", "ols", "wls_struct"]),
    shift=st.floats(-200, 200),
)
def test_reconciled_mean_and_bounds_are_coherent(
    sizes: list[int], seed: int, method: str, shift: float
) -> None:
    panel, meta = _random_panel(sizes, 30, seed)
    _, hier = aggregate_panel(panel, meta)
    rng = np.random.default_rng(seed)
    n, h = len(hier.ids), 5
    mean = rng.normal(shift, 100, (n, h))
    half = np.abs(rng.normal(0, 30, (n, h)))
    out = reconcile(
        hier,
        {"mean": mean, "lo_80": mean - half, "hi_80": mean + half},
        method=method,
        residuals=rng.normal(0, 10, (n, 24)),
        nonnegative=True,
        lower=["lo_80"],
        upper=["hi_80"],
    )
    bidx = hier.bottom_index()
    for name, arr in out.items():
        summed = hier.S @ arr[bidx]
        assert np.allclose(summed, arr, rtol=1e-6, atol=1e-9), name
        assert (arr >= 0).all(), name
    assert (out["lo_80"] <= out["mean"] + 1e-9).all()
    assert (out["hi_80"] >= out["mean"] - 1e-9).all()


def test_wls_var_moves_the_noisy_series_and_keeps_the_precise_one() -> None:
    """``wls_var`` weighs each series by the inverse variance of its one-step errors: the
    hierarchy's incoherence goes to the series whose errors are large, a series known to within
    a fraction keeps its forecast (structural weights ignore precision and move it)."""
    panel, meta = make_panel(n_fam=1, n_exe=3, months=24)
    _, hier = aggregate_panel(panel, meta)
    n, bidx = len(hier.ids), hier.bottom_index()
    rng = np.random.default_rng(3)
    residuals = rng.normal(0, 50, (n, 36))
    residuals[bidx[0]] *= 1e-3  # one precise bottom series
    mean = hier.S @ np.full((len(bidx), 2), 100.0)
    mean[0] += 90.0  # the top disagrees with its children by 90
    kwargs = {"residuals": residuals, "nonnegative": True}
    var = reconcile(hier, {"mean": mean}, method="wls_var", **kwargs)["mean"]
    ols = reconcile(hier, {"mean": mean}, method="ols", **kwargs)["mean"]
    np.testing.assert_allclose(var[bidx[0]], 100.0, rtol=1e-4)
    assert abs(ols[bidx[0], 0] - 100.0) > 1.0
    others = np.abs(var[bidx[1:]] - 100.0)
    assert (others > 1.0).all()  # the noisy ones absorbed the difference
    np.testing.assert_allclose(var, hier.S @ var[bidx])


def test_none_keeps_base_forecasts_clipped() -> None:
    panel, meta = make_panel(n_fam=2, n_exe=2, months=24)
    _, hier = aggregate_panel(panel, meta)
    base = np.linspace(-5, 5, len(hier.ids) * 3).reshape(len(hier.ids), 3)
    out = reconcile(hier, {"mean": base}, method="none", nonnegative=True)
    assert np.array_equal(out["mean"], np.maximum(base, 0))


def test_unknown_method_is_refused() -> None:
    panel, meta = make_panel(n_fam=1, n_exe=2, months=24)
    _, hier = aggregate_panel(panel, meta)
    with pytest.raises(ValueError, match="unknown reconciliation"):
        reconcile(hier, {"mean": np.ones((len(hier.ids), 2))}, method="magic")


def test_a_failed_reconciler_falls_back_to_bottom_up_not_to_a_scale_blind_one() -> None:
    """MinTrace cannot weigh series without residuals: the fallback keeps each bottom series'
    own forecast, where a structural WLS would move a small series by a large one's share."""
    panel, meta = make_panel(n_fam=2, n_exe=3, months=24)
    _, hier = aggregate_panel(panel, meta)
    n, bidx = len(hier.ids), hier.bottom_index()
    mean = np.full((n, 4), 1000.0)
    mean[bidx[0]] = 1.0  # one small bottom series among large ones; the aggregates incoherent
    with pytest.warns(UserWarning, match="mint_shrink failed .*using bottom_up"):
        out = reconcile_or_fall_back(
            hier,
            {"mean": mean},
            [],
            method="mint_shrink",
            residuals=np.zeros((n, 0)),
            nonnegative=True,
        )
    np.testing.assert_allclose(out["mean"][bidx], mean[bidx])  # bottom series untouched
    np.testing.assert_allclose(out["mean"], hier.S @ mean[bidx])  # and summed up
    wls = reconcile(hier, {"mean": mean}, method="wls_struct", nonnegative=True)
    assert wls["mean"][bidx[0], 0] == 0.0  # what the structural fallback made of it
