"""Conditioning models fitted at training travel in the bundle and give what a refit gives."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecasting.bundle import Bundle, BundleError
from forecasting.fitted_state import FittedStateError, FittedStates, decode, encode
from forecasting.monitoring.forecast import index_bundle
from forecasting.training.config import TrainConfig
from forecasting.training.pipeline import fit
from tests.panels import make_panel


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """A French-calendar model (AutoARIMA with working days beside the combination), saved;
    one series has an exceptional month (adjusted before fitting)."""
    import polars as pl

    panel, meta = make_panel(n_fam=2, n_exe=2, months=48, seed=3)
    spike = (
        (pl.col("famille") == "F0")
        & (pl.col("executant") == "E0")
        & (pl.col("ds") == pl.date(2018, 5, 1))
    )
    panel = panel.with_columns(
        pl.when(spike).then(pl.col("y") * 3).otherwise(pl.col("y")).alias("y")
    )
    config = TrainConfig(calendar="france", models=["AutoARIMA", "AutoETS"], windows=6)
    res = fit(panel, meta, config)
    assert res.bundle.conditioning is not None and len(res.bundle.conditioning) > 0
    path = res.bundle.save(tmp_path_factory.mktemp("bundle") / "b")
    return Bundle.load(path)


def test_stored_state_gives_the_refit_expectation(saved: Bundle) -> None:
    stored = index_bundle(saved).conditioners
    refit = index_bundle(Bundle(**{**saved.__dict__, "conditioning": None})).conditioners
    kinds = set()
    for uid, c in stored.items():
        y = c.history_y
        for known in [(float(y[-12]),), (float(y[-1]) * 1.1, float(y[-2]) * 0.9)]:
            a, b = c.forecast(known), refit[uid].forecast(known)
            assert (a is None) == (b is None), uid
            if a is not None and b is not None:
                np.testing.assert_allclose(a, b, rtol=0, atol=1e-9 * max(1.0, abs(y).max()))
                kinds.add(c.members)
    assert any("AutoARIMA" in m for m in kinds)  # the regressor path is covered
    assert saved.adjustments is not None
    assert "total/F0/E0" in set(saved.adjustments["unique_id"])  # and an adjusted history


def test_stored_state_is_not_refitted(saved: Bundle) -> None:
    """Loading uses the stored models: breaking the refit path changes nothing."""
    cond = index_bundle(saved).conditioners
    for c in cond.values():
        c._fit_members = None  # type: ignore[method-assign]  # a refit would raise
    assert sum(c.ready() for c in cond.values()) == len(cond)


def test_a_member_mismatch_falls_back_to_a_refit(saved: Bundle) -> None:
    assert saved.conditioning is not None
    uid = next(iter(saved.conditioning.doc))
    doc = json.loads(json.dumps(saved.conditioning.doc))
    doc[uid]["dict"]["members"] = {"list": ["SeasonalNaive"]}
    other = Bundle(
        **{**saved.__dict__, "conditioning": FittedStates(doc, saved.conditioning.arrays)}
    )
    c = index_bundle(other).conditioners[uid]
    assert c.ready() and c.states() is not None  # refitted on the spot


def test_a_document_cannot_name_a_class_outside_the_allowlist(saved: Bundle, tmp_path) -> None:
    path = saved.save(tmp_path / "b")
    doc = json.loads((path / "conditioning.json").read_text())
    uid = next(iter(doc["dict"]))
    doc["dict"][uid]["dict"]["states"] = {"record": "os.system", "items": [{"int": 1}]}
    (path / "conditioning.json").write_text(json.dumps(doc))
    loaded = Bundle.load(path)  # reading decodes nothing
    assert loaded.conditioning is not None
    with pytest.raises(FittedStateError, match="not an allowed record"):
        loaded.conditioning.get(uid)
    (path / "conditioning.json").write_text("[1, 2]")
    with pytest.raises(BundleError, match="not a fitted-state document"):
        Bundle.load(path)


def test_npz_objects_are_refused(tmp_path) -> None:
    np.savez(tmp_path / "conditioning.npz", a0=np.array([{"x": 1}], dtype=object))
    (tmp_path / "conditioning.json").write_text(json.dumps({"dict": {}}))
    with pytest.raises(FittedStateError, match="cannot read"):
        FittedStates.load(tmp_path)


_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**62), 2**62),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.builds(np.float64, st.floats(allow_nan=False)),
    st.builds(np.int64, st.integers(-(2**62), 2**62)),
    st.lists(st.floats(allow_nan=False), max_size=6).map(np.array),
)
_tree = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.text(max_size=4), inner, max_size=3),
    ),
    max_leaves=12,
)


def _same(a: object, b: object) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)  # type: ignore[union-attr]
    if isinstance(a, float | np.floating):
        return (np.isnan(a) and np.isnan(b)) or a == b  # type: ignore[arg-type]
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)  # type: ignore[attr-defined]
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type]
    return a == b


@settings(max_examples=150, deadline=None)
@given(_tree)
def test_encode_decode_round_trips_types_and_values(tree: object) -> None:
    doc, arrays = encode(tree)
    again = decode(json.loads(json.dumps(doc)), arrays)
    assert _same(tree, again)


def test_fitting_in_worker_processes_stores_the_same_state(saved: Bundle) -> None:
    import polars as pl

    from forecasting.monitoring.conditioning import _fit_frame, _fit_specs

    conditioners = index_bundle(saved).conditioners
    specs = {uid: c.spec() for uid, c in list(conditioners.items())[:3] if c.members}
    here = FittedStates.of(_fit_specs(specs))
    there = FittedStates.of(_fit_frame(pl.DataFrame({"unique_id": list(specs)}), specs, n_jobs=2))
    assert here.doc.keys() == there.doc.keys()
    for uid in specs:
        a, b = here.get(uid), there.get(uid)
        assert a is not None and b is not None and a[0] == b[0]
        doc_a, arrays_a = encode(a[1])
        doc_b, arrays_b = encode(b[1])
        assert doc_a == doc_b
        for key, arr in arrays_a.items():
            np.testing.assert_array_equal(arr, arrays_b[key])


def test_a_state_that_is_not_plain_data_is_stored_as_failed() -> None:
    good = {"par": np.arange(3.0), "m": 12}
    bad = {"par": np.array([{"x": 1}], dtype=object)}
    states = FittedStates.of({"a": (("AutoETS",), [good]), "b": (("AutoETS",), [bad])})
    a, b = states.get("a"), states.get("b")
    assert a is not None and a[0] == ("AutoETS",) and a[1] is not None
    np.testing.assert_array_equal(a[1][0]["par"], good["par"])
    assert b == (("AutoETS",), None)


def test_training_stores_the_final_fits_it_already_has(monkeypatch: pytest.MonkeyPatch) -> None:
    """A member fitted by training on exactly the series' history is stored as it is; a
    different history (an adjusted month) or a failed member is fitted again."""
    from forecasting.monitoring.conditioning import Conditioner, fitted_states
    from forecasting.training.models import make_model

    rng = np.random.default_rng(0)
    t = np.arange(48)
    y = 100 + t + 10 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 2, 48)
    final = make_model("AutoETS").fit(y).model_
    elsewhere = make_model("AutoETS").fit(y * 1.5).model_
    conditioners = {u: Conditioner(("AutoETS",), "mean", False, y, 0, 12) for u in "abc"}
    kept = {
        "a": (y, {"AutoETS": final}),
        "b": (y * 1.5, {"AutoETS": elsewhere}),  # fitted on other values: refit
        "c": (y, {"AutoETS": None}),  # the member failed: refit
    }
    states = fitted_states(conditioners, kept=kept)
    for u in "abc":
        entry = states.get(u)
        assert entry is not None and entry[1] is not None
        np.testing.assert_allclose(entry[1][0]["par"], final["par"])  # the history's fit

    def no_refit(self: Conditioner) -> list:
        raise RuntimeError("refitted")

    monkeypatch.setattr(Conditioner, "_fit_members", no_refit)
    states = fitted_states(conditioners, kept=kept)
    got = {u: states.get(u) for u in "abc"}
    assert got["a"] is not None and got["a"][1] is not None  # stored without a fit
    assert got["b"] == (("AutoETS",), None) and got["c"] == (("AutoETS",), None)  # refit tried
