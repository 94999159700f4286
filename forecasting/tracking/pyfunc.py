"""The MLflow pyfunc model: a :class:`~forecasting.bundle.Bundle` behind ``predict``.

The model's artifact ``bundle`` is the saved bundle directory; its code is a minimal copy of
the ``forecasting`` package (:data:`PYFUNC_MODULES`), so that a logged model loads in a
fresh process without the repository.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import warnings
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.types import ColSpec, Schema

from forecasting.bundle import Bundle
from forecasting.data.panel import ID_COL

__all__ = ["BUNDLE_KEY", "PIP_PACKAGES", "PYFUNC_MODULES", "SpendcastModel", "log_pyfunc"]

BUNDLE_KEY = "bundle"
"""The pyfunc artifact that holds the saved bundle directory."""
PIP_PACKAGES = (
    "mlflow",
    "polars",
    "pandas",
    "numpy",
    "pyarrow",
    "pydantic",
    "pydantic-settings",
)
PYFUNC_MODULES = (
    "__init__.py",
    "errors.py",
    "bundle.py",
    "fitted_state.py",
    "data/__init__.py",
    "data/panel.py",
    "tracking/*.py",
)
"""The part of ``forecasting`` the pyfunc needs to load a bundle (shipped as its code): the
bundle and what it imports, and the tracking package that defines :class:`SpendcastModel`."""


class SpendcastModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    """Pyfunc wrapper of a :class:`Bundle` (artifact ``bundle`` = the saved bundle dir).

    Input: ``unique_id`` (str), ``horizon`` (int), optional ``level`` (int).
    Output: long frame ``unique_id, ds, mean, lo_<L>, hi_<L>``.
    """

    def load_context(self, context: Any) -> None:
        """Load the bundle from the model's artifacts."""
        self.bundle = Bundle.load(context.artifacts[BUNDLE_KEY])

    def predict(  # noqa: D102
        self,
        context: Any,  # noqa: ARG002
        model_input: pd.DataFrame,
        params: Any = None,  # noqa: ARG002
    ) -> pd.DataFrame:
        frames = []
        for row in model_input.to_dict("records"):
            level = row.get("level")
            levels = (
                None
                if level is None or (isinstance(level, float) and level != level)
                else [int(level)]
            )
            frames.append(
                self.bundle.forecast(
                    ids=[str(row[ID_COL])], horizon=int(row["horizon"]), levels=levels
                ).to_pandas()
            )
        if not frames:
            return pd.DataFrame(columns=[ID_COL, "ds", "mean"])
        return pd.concat(frames, ignore_index=True)


def _pip_requirements() -> list[str]:
    reqs = []
    for pkg in PIP_PACKAGES:
        try:
            reqs.append(f"{pkg}=={importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover
            reqs.append(pkg)
    return reqs


def _code_dir(tmp: Path) -> str:
    """A copy of the minimal ``forecasting`` package the pyfunc needs to load."""
    pkg = Path(__file__).resolve().parents[1]
    dst = tmp / "forecasting"
    for pattern in PYFUNC_MODULES:
        for src in sorted(pkg.glob(pattern)):
            rel = src.relative_to(pkg)
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst / rel)
    return str(dst)


def _signature(bundle: Bundle, example: pd.DataFrame) -> ModelSignature:
    """Inputs ``unique_id``, ``horizon`` and optional ``level``; outputs as the bundle gives."""
    sample = SpendcastModel()
    sample.bundle = bundle
    with warnings.catch_warnings():  # integer-column hint: level is optional below
        warnings.simplefilter("ignore", UserWarning)
        signature = infer_signature(example, sample.predict(None, example))
    return ModelSignature(
        inputs=Schema(
            [
                ColSpec("string", ID_COL),
                ColSpec("long", "horizon"),
                ColSpec("long", "level", required=False),
            ]
        ),
        outputs=signature.outputs,
    )


def log_pyfunc(bundle: Bundle, tmp: Path) -> str:
    """Save ``bundle`` under ``tmp`` and log it as the active run's pyfunc ``model``; its URI."""
    bundle_dir = bundle.save(tmp / "bundle")
    meta = bundle.meta
    example = pd.DataFrame(
        {ID_COL: [bundle.ids[0]], "horizon": [meta.horizon], "level": [meta.levels[-1]]}
    )
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=SpendcastModel(),
        artifacts={BUNDLE_KEY: str(bundle_dir)},
        code_paths=[_code_dir(tmp / "code")],
        pip_requirements=_pip_requirements(),
        signature=_signature(bundle, example),
        input_example=example,
    )
    return str(info.model_uri)
