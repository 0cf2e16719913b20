"""How a registered version describes itself: aliases, and tags for its metrics, data
version, scoring version, checkpoint, MLE baseline and experiment kind, written by
registration and read by the gate."""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHAMPION = "champion"
CHALLENGER = "challenger"
MODEL_ARTIFACT = "generator"  # name of the logged model (under the run's outputs)
METRIC_TAG_PREFIX = "metric."  # metrics are version tags "metric.<name>" = repr(float)
DATA_VERSION_TAG = "data_version"
EXPERIMENT_KIND_TAG = "experiment_kind"
# What scored the metrics: a hash of the scoring settings and code (`Scorer.version`), and the
# settings themselves (JSON), so that a gate refusing to compare can name what differs.
SCORING_VERSION_TAG = "scoring_version"
SCORING_SETTINGS_TAG = "scoring_settings"
CHECKPOINT_SHA_TAG = "checkpoint_sha256"  # sha256 of the checkpoint bytes the metrics were scored from
BASELINE_TAG_PREFIX = "baseline."  # "baseline.<name>": the MLE generator's metric, scored in the same evaluation


def client() -> "MlflowClient":
    from ..tracking import client

    return client()  # the tracking/registry URI from MLFLOW_TRACKING_URI / the repository default


def format_value(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def parse_value(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return None


def metric_tags(metrics: Mapping[str, float]) -> dict[str, str]:
    """Version tags for ``metrics``: "metric.<name>" = repr(float) ("nan" marks a failed evaluation)."""
    return {f"{METRIC_TAG_PREFIX}{k}": format_value(v) for k, v in metrics.items()}


def baseline_tags(metrics: Mapping[str, float]) -> dict[str, str]:
    """Version tags for the MLE baseline's ``metrics``: "baseline.<name>" = repr(float)."""
    return {f"{BASELINE_TAG_PREFIX}{k}": format_value(v) for k, v in metrics.items()}


def baseline_of(version: "ModelVersion", name: str) -> float | None:
    """The MLE baseline's metric recorded on a version ("baseline.<name>"), or None."""
    return parse_value(version.tags.get(f"{BASELINE_TAG_PREFIX}{name}"))


def metric_of(version: "ModelVersion | None", name: str | None) -> float | None:
    """A version's metric from its tags ("metric.<name>", or "<name>" as set by hand)."""
    if version is None or name is None:
        return None
    key = name if name.startswith(METRIC_TAG_PREFIX) else f"{METRIC_TAG_PREFIX}{name}"
    return parse_value(version.tags.get(key, version.tags.get(name)))
