"""Registration: log a trained generator as a pyfunc model under its run, register it as a
new version of its registered model with its metrics, data version, scoring version,
checkpoint hash and MLE baseline as tags, and point alias ``challenger`` at it."""
from __future__ import annotations

import hashlib
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from ..contract import joiner_of
from .model import generator_model_class, model_signature
from .tags import (CHALLENGER, CHECKPOINT_SHA_TAG, DATA_VERSION_TAG, EXPERIMENT_KIND_TAG, MODEL_ARTIFACT,
                   SCORING_SETTINGS_TAG, SCORING_VERSION_TAG, baseline_tags, client, metric_tags)


def _pip_requirements() -> list[str]:
    """Pinned to what is installed (no inference subprocess). torch's local version tag
    (``+cpu``) is dropped: the CPU build needs the PyTorch index, a pip option, not a pin."""
    from importlib.metadata import version

    return [f"{package}=={version(package).split('+')[0]}"
            for package in ("mlflow", "torch", "numpy", "pandas", "cloudpickle")]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def register_generator(
    *,
    run_id: str,
    model_name: str,
    checkpoint: Path,
    vocab: Path | None,
    tokenizer: str,
    metrics: Mapping[str, float],
    data_version: str,
    experiment_kind: str,
    scoring_version: str,
    scoring_settings: Mapping[str, object],
    baseline: Mapping[str, float],
) -> str:
    """Log the generator as a pyfunc model under ``run_id``, register it as a new version of
    ``model_name`` (created if missing) and point alias ``challenger`` at it.

    ``tokenizer`` is "char" or "whitespace" for a corpus (decoded text is joined with "" or
    " ") and ignored without ``vocab``. The version's tags: ``metric.<name>`` for each
    metric (``repr(float)``; "nan" marks a failed evaluation, which the gate never promotes),
    ``data_version``, ``experiment_kind``, ``tokenizer``, ``scoring_version`` and
    ``scoring_settings`` (what scored the metrics: `Scorer.version`, `Scorer.final_settings`),
    ``checkpoint_sha256`` (of ``checkpoint``, the file the metrics were scored from) and
    ``baseline.<name>`` for each of ``baseline`` (the MLE generator's metrics, scored in the
    same evaluation). Returns the version number.
    The run is not resumed or ended (its status is left to the stage that owns it).
    """
    import json

    import mlflow
    import mlflow.pyfunc
    from mlflow.models import Model

    import seqgan_core  # imported here so that logging's serving-input check reuses it (see below)

    checkpoint, vocab = Path(checkpoint), (Path(vocab) if vocab is not None else None)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"generator checkpoint {checkpoint} does not exist")
    if vocab is not None and not vocab.is_file():
        raise FileNotFoundError(f"vocabulary {vocab} does not exist")
    if vocab is not None and tokenizer not in ("char", "whitespace"):
        raise ValueError(f"tokenizer must be 'char' or 'whitespace' for a corpus, got {tokenizer!r}")
    checkpoint_sha = file_sha256(checkpoint)  # before logging: the bytes that were scored are the ones registered
    mlflow_client = client()
    run = mlflow_client.get_run(run_id)  # fails early and clearly on a wrong run id

    meta = {
        "experiment_kind": experiment_kind,
        "tokenizer": tokenizer if vocab is not None else "ids",
        "joiner": joiner_of(tokenizer) if vocab is not None else " ",
        "data_version": data_version,
    }
    with tempfile.TemporaryDirectory(prefix="seqgan-register-") as tmp:
        meta_path = Path(tmp) / "meta.json"
        meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        artifacts = {"generator": str(checkpoint), "meta": str(meta_path)}
        if vocab is not None:
            artifacts["vocab"] = str(vocab)
        import pandas as pd

        # `Model.log` rather than `mlflow.pyfunc.log_model`: it takes run_id, so the run is
        # neither resumed nor ended (`start_run(run_id=...)` would mark it FINISHED).
        # The LoggedModel is created here, in the run's experiment: left to `Model.log`
        # without an active run, it lands in the *default* experiment (id 0), whose artifact
        # root is ./mlruns under the current directory.
        logged = mlflow_client.create_logged_model(
            experiment_id=run.info.experiment_id, name=MODEL_ARTIFACT, source_run_id=run_id,
            model_type="seqgan-generator",
            tags={DATA_VERSION_TAG: data_version, EXPERIMENT_KIND_TAG: experiment_kind},
        )
        # The input example is validated by loading the model in this process, which puts
        # the copied code folder (in a temp folder, deleted afterwards) first on sys.path:
        # seqgan_core is already imported above, so this process keeps the repository's copy,
        # and sys.path is restored afterwards.
        saved_path = list(sys.path)
        try:
            info = Model.log(
                artifact_path=None,
                name=MODEL_ARTIFACT,
                flavor=mlflow.pyfunc,
                run_id=run_id,
                model_id=logged.model_id,
                python_model=generator_model_class()(),
                artifacts=artifacts,
                code_paths=[str(Path(seqgan_core.__file__).parent)],
                pip_requirements=_pip_requirements(),
                signature=model_signature(),
                input_example=pd.DataFrame({"n": [2], "temperature": [1.0], "seed": [0], "prefix": [""]}),
                metadata={"experiment_kind": experiment_kind, "data_version": data_version},
            )
        finally:
            sys.path[:] = saved_path

    tags = metric_tags(metrics)
    tags.update(baseline_tags(baseline))
    tags.update({DATA_VERSION_TAG: data_version, EXPERIMENT_KIND_TAG: experiment_kind, "tokenizer": meta["tokenizer"],
                 SCORING_VERSION_TAG: scoring_version,
                 SCORING_SETTINGS_TAG: json.dumps(scoring_settings, sort_keys=True, default=str)[:5000],
                 CHECKPOINT_SHA_TAG: checkpoint_sha})
    version = mlflow.register_model(info.model_uri, model_name, tags=tags)
    mlflow_client.set_registered_model_alias(model_name, CHALLENGER, version.version)
    return str(version.version)

