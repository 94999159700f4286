"""MLflow tracking, the pyfunc model, the registry and model loading.

This package is the only place that imports :mod:`mlflow`; its modules are the MLflow edge:

* :mod:`.client`: the tracking settings (environment), the client, experiments;
* :mod:`.runs`: a training run (:func:`training_run`, :class:`TrainingRun`) logs params,
  metrics and artifacts plus the model, and :func:`train` is ``spendcast train``'s job;
* :mod:`.pyfunc`: the MLflow pyfunc model whose artifact is the saved
  :class:`~forecasting.bundle.Bundle` directory;
* :mod:`.registry`: registered versions and the ``champion`` alias (the promotion rule);
* :mod:`.loading`: :func:`load_model`, with a local copy served when the store is down;
* :mod:`.compare`: the runs of an experiment side by side.
"""

from forecasting.tracking.client import TrackingSettings, tracking_uri
from forecasting.tracking.compare import compare_runs, list_runs
from forecasting.tracking.loading import LoadedModel, load_model
from forecasting.tracking.pyfunc import PIP_PACKAGES, SpendcastModel
from forecasting.tracking.registry import CHAMPION, Promotion, champion_summary
from forecasting.tracking.runs import TrainingRun, TrainOutcome, train, training_run

__all__ = [
    "TrackingSettings",
    "TrainingRun",
    "TrainOutcome",
    "Promotion",
    "LoadedModel",
    "SpendcastModel",
    "training_run",
    "train",
    "load_model",
    "champion_summary",
    "compare_runs",
    "list_runs",
    "tracking_uri",
    "CHAMPION",
    "PIP_PACKAGES",
]
