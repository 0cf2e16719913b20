"""The model registry: package a trained generator as an MLflow pyfunc model
(`model`), register it (`registration`), and decide which version serves as ``champion``
(`gate`, serialised by `lock`: a file lock on one machine, a PostgreSQL advisory lock across
machines).

Flow: the evaluate stage calls `register_generator` (logs the pyfunc model under its run,
creates a new version of the registered model, tags it with its metrics, its
``data_version``, ``scoring_version``, ``checkpoint_sha256``, MLE ``baseline.*`` metrics and
``experiment_kind``, and points alias ``challenger`` at it); the gate
(`promote`, or `promote_version` with params' rule) then compares the candidate with the
current ``champion``. `rollback` points ``champion`` back at a named version. Consumers load
``models:/NAME@champion`` (`load_generator_model`, `generate`, `seqgan generate`,
`seqgan serve`).

mlflow, torch and seqgan_core are imported inside the functions, so importing this package
(the CLI does) costs nothing.
"""
from __future__ import annotations

from .gate import Decision, NotGateable, experiment_of, promote, promote_version, rollback
from .lock import LOCK_DSN_ENV, LOCK_ENV, registry_lock
from .model import (MAX_SAMPLES, MAX_SECONDS, generate, generator_model_class, load_generator_model, model_info,
                    model_signature)
from .registration import register_generator
from .tags import (CHALLENGER, CHAMPION, DATA_VERSION_TAG, EXPERIMENT_KIND_TAG, METRIC_TAG_PREFIX, MODEL_ARTIFACT,
                   client)

__all__ = [
    "CHALLENGER", "CHAMPION", "DATA_VERSION_TAG", "EXPERIMENT_KIND_TAG", "LOCK_DSN_ENV", "LOCK_ENV", "MAX_SAMPLES",
    "MAX_SECONDS", "METRIC_TAG_PREFIX", "MODEL_ARTIFACT", "Decision", "NotGateable", "client", "experiment_of", "generate",
    "generator_model_class", "load_generator_model", "model_info", "model_signature", "promote", "promote_version",
    "register_generator", "registry_lock", "rollback",
]
