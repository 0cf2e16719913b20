"""MLflow tracking for pipeline stages.

Each DVC stage is its own process, so the runs are tied together by a key: one parent
run per experiment per pipeline run, found by its `seqgan.pipeline_key` tag while it is
RUNNING (evaluate ends it), with a nested run per stage. The key comes from
`SEQGAN_PIPELINE_RUN` when an orchestrator (the Prefect flow) sets it, and otherwise from
the git revision and the contents of params.yaml and dvc.yaml: stages run by one `dvc
repro` share it.

Embedded default store: SQLite `mlflow.db` and artifacts under `mlartifacts/` at the
repository root; `MLFLOW_TRACKING_URI` overrides (with a tracking server, artifacts go to the
server's artifact store). mlflow is imported lazily.
"""
from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from .runtime import StageContext

from .stage_graph import PIPELINE_FILES

DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"
PIPELINE_KEY_TAG = "seqgan.pipeline_key"
HOST_TAG, PID_TAG = "seqgan.host", "seqgan.pid"  # which process owns a RUNNING run
METRIC_BUFFER = 500  # flushed with one log_batch call: each single log_metric costs ~20 ms


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(DEFAULT_DB).resolve()}"


def sqlite_file(uri: str) -> Path | None:
    """The database file of a SQLite store URI (relative to the current directory unless
    absolute), None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?")[0])


def client() -> "MlflowClient":
    """A client for the project's store. The URI is passed explicitly, never through
    `mlflow.set_tracking_uri`: that process-wide setting would outlive a later change of
    MLFLOW_TRACKING_URI (a worker running flows for several stores, a test session). The
    environment default is filled in so that MLflow calls without a client (model
    logging) resolve the same store."""
    from mlflow import MlflowClient

    uri = tracking_uri()
    os.environ.setdefault("MLFLOW_TRACKING_URI", uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def git_revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def pipeline_key(pipeline: str = "training") -> str:
    """Which parent run a stage belongs to. The training pipeline's key is bare (the
    registry and the Prefect flows look runs up by it); another pipeline's is suffixed."""
    if key := os.environ.get("SEQGAN_PIPELINE_RUN"):
        return key if pipeline == "training" else f"{key}-{pipeline}"
    digest = hashlib.sha256(git_revision().encode())
    for name in ("params.yaml", PIPELINE_FILES[pipeline]):
        path = Path(name)
        digest.update(path.read_bytes() if path.exists() else b"")
    key = digest.hexdigest()[:12]
    return key if pipeline == "training" else f"{key}-{pipeline}"


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


def is_server(uri: str) -> bool:
    """A tracking server (several machines share it) rather than a store this process opens."""
    return uri.startswith(("http://", "https://"))


def _experiment_id(mlflow_client: "MlflowClient", name: str) -> str:
    """The experiment's id, created if missing. Against a tracking server its artifacts go
    where the server says (`--artifacts-destination`, served to every worker) unless
    SEQGAN_ARTIFACT_ROOT names a place; otherwise under mlartifacts/ here."""
    from mlflow.exceptions import MlflowException

    existing = mlflow_client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    location = None
    if os.environ.get("SEQGAN_ARTIFACT_ROOT") or not is_server(tracking_uri()):
        location = (Path(os.environ.get("SEQGAN_ARTIFACT_ROOT", DEFAULT_ARTIFACTS)).resolve() / name).as_uri()
    try:
        return mlflow_client.create_experiment(name, artifact_location=location)
    except MlflowException as exc:  # another worker created it first
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return mlflow_client.get_experiment_by_name(name).experiment_id


def _parent_run(mlflow_client: "MlflowClient", experiment_id: str, key: str, params: dict[str, str],
                pipeline: str = "training") -> str:
    """The pipeline run's parent run, created by the first stage that needs it. Stages on two
    workers may both create one at once: each then keeps the earliest of those with the key
    and deletes its own if it is not that one, so they agree on a single parent.

    A FINISHED parent is never reused: evaluate (or an orchestrator) ended that pipeline run.
    The same key comes back when a stage re-runs without a committed change (uncommitted
    code, `dvc repro -f`); reusing that run would put two registered models under one run
    whose metrics belong to only one. A parent that a failed stage ended (`stage_run`) is
    reused and set RUNNING again: the same key after a failure is that pipeline run resumed."""
    query = f"tags.`{PIPELINE_KEY_TAG}` = '{key}' and attributes.status != 'FINISHED'"
    found = mlflow_client.search_runs([experiment_id], filter_string=query, max_results=1)
    if found:
        if found[0].info.status != "RUNNING":
            mlflow_client.update_run(found[0].info.run_id, status="RUNNING")
        return found[0].info.run_id
    run = mlflow_client.create_run(
        experiment_id,
        run_name=f"pipeline-{key}" if pipeline == "training" else f"{pipeline}-{key}",
        tags={PIPELINE_KEY_TAG: key, "mlflow.source.git.commit": git_revision()},
    )
    mine = run.info.run_id
    rivals = mlflow_client.search_runs([experiment_id], filter_string=query, max_results=50)
    first = min(rivals, key=lambda r: (r.info.start_time, r.info.run_id)).info.run_id if rivals else mine
    if first != mine:
        mlflow_client.delete_run(mine)
        return first
    _log_params(mlflow_client, mine, params)
    return mine


def _log_params(mlflow_client: "MlflowClient", run_id: str, params: dict[str, str]) -> None:
    from mlflow.entities import Param

    items = [Param(k, v) for k, v in sorted(params.items())]
    for start in range(0, len(items), 100):  # MLflow accepts at most 100 params per batch
        mlflow_client.log_batch(run_id, params=items[start : start + 100])


class StageTracker:
    """Logging for one stage's nested run. Metrics are buffered and sent in batches."""

    def __init__(self, mlflow_client: "MlflowClient", run_id: str, parent_run_id: str) -> None:
        self.client, self.run_id, self.parent_run_id = mlflow_client, run_id, parent_run_id
        self._metrics: list = []

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0, *, parent: bool = False) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._metrics.extend(Metric(k, float(v), now, step) for k, v in metrics.items())
        if parent:
            self.client.log_batch(self.parent_run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])
        if len(self._metrics) >= METRIC_BUFFER:
            self.flush()

    def flush(self) -> None:
        for start in range(0, len(self._metrics), 1000):  # MLflow's per-batch limit
            self.client.log_batch(self.run_id, metrics=self._metrics[start : start + 1000])
        self._metrics.clear()

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self.flush()
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def set_tags(self, tags: Mapping[str, str], *, parent: bool = False) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.parent_run_id if parent else self.run_id, key, str(value))

    def finish_pipeline(self) -> None:
        """Mark the parent run finished: called by the last stage (evaluate)."""
        self.client.set_terminated(self.parent_run_id, "FINISHED")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def close_abandoned_runs(mlflow_client: "MlflowClient", experiment_id: str, dvc_stage: str) -> list[str]:
    """Mark KILLED the RUNNING runs of `dvc_stage` whose process (on this host) is gone.

    A stage killed by SIGKILL (or the OOM killer, or a lost node) cannot close its own run;
    the next run of the same stage does it, so MLflow never shows a dead run as RUNNING.
    Runs of other hosts are left alone: their process cannot be checked from here."""
    found = mlflow_client.search_runs(
        [experiment_id], filter_string=f"tags.`seqgan.dvc_stage` = '{dvc_stage}' and attributes.status = 'RUNNING'",
    )
    closed = []
    for run in found:
        tags = run.data.tags
        if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG, "").isdigit():
            continue
        pid = int(tags[PID_TAG])
        if pid == os.getpid() or _alive(pid):
            continue
        mlflow_client.set_tag(run.info.run_id, "seqgan.error", f"process {pid} ended without closing its run (killed)")
        mlflow_client.set_terminated(run.info.run_id, "KILLED")
        closed.append(run.info.run_id)
    return closed


def close_stage_runs(experiment: str, dvc_stage: str, reason: str) -> list[str]:
    """Mark KILLED every RUNNING run of `dvc_stage` in MLflow experiment `experiment`,
    whichever host ran it: for an orchestrator that knows the process is gone (the sweep
    flow, when a worker stops sending heartbeats) before it starts the stage elsewhere."""
    mlflow_client = client()
    found = mlflow_client.get_experiment_by_name(experiment)
    if found is None:
        return []
    runs = mlflow_client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.`seqgan.dvc_stage` = '{dvc_stage}' and attributes.status = 'RUNNING'")
    for run in runs:
        mlflow_client.set_tag(run.info.run_id, "seqgan.error", reason[:5000])
        mlflow_client.set_terminated(run.info.run_id, "KILLED")
    return [run.info.run_id for run in runs]


def finish_pipeline_runs(keys: list[str], status: str = "FINISHED") -> int:
    """End the parent runs of these pipeline keys still RUNNING, in every experiment: for an
    orchestrator that knows the pipeline run is over (the sweep flow). Returns how many."""
    mlflow_client = client()
    experiments = [e.experiment_id for e in mlflow_client.search_experiments()]
    ended = 0
    for key in keys:
        for run in mlflow_client.search_runs(
                experiments, filter_string=f"tags.`{PIPELINE_KEY_TAG}` = '{key}' and attributes.status = 'RUNNING'"):
            mlflow_client.set_terminated(run.info.run_id, status)
            ended += 1
    return ended


@contextmanager
def stage_run(ctx: "StageContext") -> Iterator[StageTracker]:
    """A nested run for one stage under its experiment's parent run for this pipeline run."""
    mlflow_client = client()
    experiment_id = _experiment_id(mlflow_client, ctx.kind.mlflow_experiment(ctx.params))
    params = flatten(ctx.params.model_dump())
    parent_id = _parent_run(mlflow_client, experiment_id, pipeline_key(ctx.pipeline), params, ctx.pipeline)
    dvc_stage = ctx.dvc_stage or (ctx.name if ctx.name == ctx.kind.data_stage else f"{ctx.name}@{ctx.experiment}")
    close_abandoned_runs(mlflow_client, experiment_id, dvc_stage)
    run = mlflow_client.create_run(
        experiment_id,
        run_name=ctx.name,
        tags={
            "mlflow.parentRunId": parent_id,
            "seqgan.stage": ctx.name,
            "seqgan.dvc_stage": dvc_stage,
            "seqgan.experiment": ctx.experiment,
            "seqgan.seed": str(ctx.params.seed),
            "mlflow.source.git.commit": git_revision(),
            "seqgan.device": str(ctx.device),
            HOST_TAG: socket.gethostname(),
            PID_TAG: str(os.getpid()),
        },
    )
    try:
        with _finished_or_failed(mlflow_client, run.info.run_id, parent_id, params) as tracker:
            yield tracker
    except BaseException as exc:
        # The pipeline run stops here: end its parent too, or a run whose params the user then
        # fixes (a new key, a new parent) would leave this one RUNNING forever.
        mlflow_client.set_tag(parent_id, "seqgan.error", f"stage {dvc_stage}: {type(exc).__name__}: {exc}"[:5000])
        mlflow_client.set_terminated(parent_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise


@contextmanager
def summary_run(experiment: str, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> Iterator[StageTracker]:
    """A top-level run in MLflow experiment `experiment`, for results that span the
    pipeline's experiments (the method comparison's table and plot)."""
    mlflow_client = client()
    run = mlflow_client.create_run(_experiment_id(mlflow_client, experiment), run_name=run_name,
                                   tags={"mlflow.source.git.commit": git_revision(), **tags})
    with _finished_or_failed(mlflow_client, run.info.run_id, run.info.run_id, flatten(params)) as tracker:
        yield tracker


@contextmanager
def _finished_or_failed(mlflow_client: "MlflowClient", run_id: str, parent_id: str,
                        params: dict[str, str]) -> Iterator[StageTracker]:
    """Log params, yield a tracker, and end the run FINISHED, or FAILED/KILLED with the error."""
    _log_params(mlflow_client, run_id, params)
    tracker = StageTracker(mlflow_client, run_id, parent_id)
    try:
        yield tracker
    except BaseException as exc:
        tracker.flush()
        mlflow_client.set_tag(run_id, "seqgan.error", f"{type(exc).__name__}: {exc}"[:5000])
        mlflow_client.set_terminated(run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    tracker.flush()
    mlflow_client.set_terminated(run_id, "FINISHED")
