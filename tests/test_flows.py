"""The Prefect flows on the tiny profile: real Prefect (a test server), real DVC, real MLflow.

One session-wide Prefect test server (~25 s to start); `train_flow` runs the synthetic
experiment in a fresh copy of the project, then again (every stage skipped), then the
promotion flow gates the registered version. A broken param fails the flow naming the stage
and is not retried; the `weekly-retrain` deployment of prefect.yaml is applied and read back.
"""
from __future__ import annotations

import importlib
import math
import os
import re
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO_ROOT, copy_project, dvc, stage_env

# Before anything imports prefect: settings are read from the environment.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="prefect-home-"))
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DVC_NO_ANALYTICS"] = "1"

pytestmark = pytest.mark.slow

MODEL = "seqgan-generator"
SYNTHETIC_STAGES = {
    "oracle",
    *(f"{s}@synthetic" for s in ("pretrain_generator", "pretrain_discriminator", "adversarial", "evaluate")),
}
ROW = re.compile(r"^\| (\S+) \| (ran|skipped \(unchanged\)) \|$")


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def use_repo(mp: pytest.MonkeyPatch, root: Path) -> None:
    """Run as if from `root`: cwd, its MLflow store, its PYTHONPATH; a fresh pipeline run id."""
    mp.chdir(root)
    for key, value in stage_env(root).items():
        if key != "PATH":
            mp.setenv(key, value)
    mp.setenv("SEQGAN_PIPELINE_RUN", "placeholder")  # so that undo removes what the flow sets
    mp.delenv("SEQGAN_PIPELINE_RUN")


def stage_rows(flow_run_id) -> dict[str, str]:
    """Stage -> "ran" / "skipped (unchanged)" from the flow run's `seqgan-training` artifact."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["seqgan-training"]),
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
        ))
    assert len(artifacts) == 1, artifacts
    return dict(m.groups() for line in artifacts[0].data.splitlines() if (m := ROW.match(line)))


def task_runs(flow_run_id, expected: int) -> list:
    """The flow run's task runs once `expected` of them are in a final state. Task run states
    reach the server as events, recorded asynchronously: they may lag the flow's return."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            settled = [r for r in runs if r.state is not None and r.state.is_final()]
            if len(settled) >= expected or time.monotonic() > deadline:
                return runs
            time.sleep(0.5)


@pytest.fixture(scope="module")
def trained(prefect_harness, tmp_path_factory: pytest.TempPathFactory):
    """A fresh copy of the project after one `train_flow("synthetic")`."""
    from pipelines.flows import train_flow

    root = copy_project(tmp_path_factory.mktemp("flows") / "repo")
    with pytest.MonkeyPatch.context() as mp:
        use_repo(mp, root)
        state = train_flow("synthetic", return_state=True)
        assert state.is_completed(), state.message
        results = state.result()
    return root, results, state.state_details.flow_run_id


def test_train_flow_runs_every_synthetic_stage(trained) -> None:
    root, results, flow_run_id = trained
    assert set(results) == {"synthetic"}
    synthetic = results["synthetic"]
    for label in ("mle", "adversarial"):
        assert math.isfinite(synthetic[label]["nll_oracle"])
    assert synthetic["model"] == MODEL and str(synthetic["version"]) == "1"
    assert stage_rows(flow_run_id) == {stage: "ran" for stage in SYNTHETIC_STAGES}
    runs = task_runs(flow_run_id, expected=len(SYNTHETIC_STAGES))
    assert {r.name for r in runs} == SYNTHETIC_STAGES
    assert all(r.state.is_completed() and r.run_count == 1 for r in runs)


def test_second_train_flow_skips_every_stage(trained, monkeypatch) -> None:
    from pipelines.flows import train_flow

    root, first, _ = trained
    use_repo(monkeypatch, root)
    state = train_flow("synthetic", return_state=True)
    assert state.is_completed(), state.message
    assert state.result()["synthetic"]["version"] == first["synthetic"]["version"]  # nothing re-registered
    assert stage_rows(state.state_details.flow_run_id) == {stage: "skipped (unchanged)" for stage in SYNTHETIC_STAGES}


def test_promotion_flow_makes_the_first_model_champion_once(trained, monkeypatch) -> None:
    from mlflow import MlflowClient

    from pipelines.flows import promotion_flow

    root, results, _ = trained
    use_repo(monkeypatch, root)
    version = str(results["synthetic"]["version"])
    decision = promotion_flow("synthetic")
    assert decision.promoted and decision.champion_before is None and decision.champion_after == version
    client = MlflowClient()
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert str(champion.version) == version
    before = client.get_model_version(MODEL, version)

    again = promotion_flow("synthetic")
    # The recorded decision comes back unchanged; nothing is written.
    assert again.recorded and again.promoted and again.champion_after == version
    assert (again.time, again.reason, again.flow_run) == (decision.time, decision.reason, decision.flow_run)
    after = client.get_model_version(MODEL, version)
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == version
    assert after.tags == before.tags and after.description == before.description
    assert after.last_updated_timestamp == before.last_updated_timestamp


def test_retrain_flow_with_a_new_seed_keeps_the_data_and_goes_through_the_gate(trained, monkeypatch) -> None:
    """After the promotion test (v1 is champion): the weekly job with another training seed
    re-trains on the same data version, registers v2 and lets the gate compare the two."""
    from mlflow import MlflowClient

    from pipelines.flows import retrain_flow

    root, first, _ = trained
    use_repo(monkeypatch, root)
    data_before = {p.name: p.read_bytes() for p in (root / "data/synthetic").iterdir()}
    state = retrain_flow("synthetic", "tiny", seed=1, return_state=True)
    assert state.is_completed(), state.message
    out = state.result()

    params = (root / "params.yaml").read_text()
    assert re.search(r"^seed: 1$", params, re.M) and params.startswith("# Tiny profile")  # comments kept
    assert out["refreshed"] == []  # no DVC imports in this project
    version = str(out["training"]["synthetic"]["version"])
    assert int(version) == int(first["synthetic"]["version"]) + 1
    assert {p.name: p.read_bytes() for p in (root / "data/synthetic").iterdir()} == data_before

    decision = out["promotion"]
    client = MlflowClient()
    v1, v2 = (client.get_model_version(MODEL, v) for v in (str(first["synthetic"]["version"]), version))
    assert v1.tags["data_version"] == v2.tags["data_version"] == decision.data_version
    assert decision.version == version and decision.champion_before == str(v1.version)
    assert decision.candidate_value is not None and decision.champion_value is not None  # compared, not refused
    assert decision.promoted == (decision.candidate_value < decision.champion_value - decision.margin)
    champion = str(client.get_model_version_by_alias(MODEL, "champion").version)
    assert champion == (version if decision.promoted else str(v1.version))


def test_refresh_inputs_updates_a_dvc_import(tmp_path, monkeypatch) -> None:
    """A corpus brought in with `dvc import-url` is re-fetched when its source changes."""
    from prefect.logging import disable_run_logger

    from pipelines.flows import refresh_inputs

    root = copy_project(tmp_path / "repo")
    source = tmp_path / "share" / "corpus.txt"
    source.parent.mkdir()
    source.write_text("first line\n", encoding="utf-8")
    use_repo(monkeypatch, root)
    dvc(root, "import-url", str(source), "data/corpora/shared.txt")
    source.write_text("first line\nsecond line\n", encoding="utf-8")

    with disable_run_logger():
        assert refresh_inputs.fn() == ["data/corpora/shared.txt.dvc"]
    assert (root / "data/corpora/shared.txt").read_text(encoding="utf-8") == "first line\nsecond line\n"


def test_stage_failure_names_the_stage_and_is_not_retried(prefect_harness, tmp_path, monkeypatch) -> None:
    from pipelines.flows import StageFailed, train_flow

    root = copy_project(tmp_path / "repo")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["oracle"]["vocab_size"] = -1
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    use_repo(monkeypatch, root)

    state = train_flow("synthetic", return_state=True)
    assert state.is_failed()
    with pytest.raises(StageFailed) as info:
        state.result()
    exc = info.value
    assert exc.stage == "oracle" and exc.transient is False and exc.exit_code == 1
    assert "stage 'oracle' failed" in str(exc)
    assert "oracle.vocab_size: value -1 is not allowed" in str(exc)
    assert "oracle" in state.message

    runs = task_runs(state.state_details.flow_run_id, expected=1)
    assert [r.name for r in runs] == ["oracle"]  # nothing downstream started
    assert runs[0].state.is_failed() and runs[0].run_count == 1  # a deterministic error: no retry
    assert not (root / "data/synthetic").exists()


def test_stage_failure_classification() -> None:
    from pipelines.flows import StageFailed

    dvc_tail = (
        "error: params.yaml is invalid (1 problem(s)):\n"
        "  oracle.vocab_size: value -1 is not allowed\n"
        "ERROR: failed to reproduce 'oracle': failed to run: python -m pipelines.stages.oracle, exited with {code}"
    )
    assert StageFailed("oracle", 255, dvc_tail.format(code=1)).transient is False  # DVC exits 255 itself
    assert StageFailed("oracle", 1, "error: bad value").transient is False
    assert StageFailed("oracle", 255, dvc_tail.format(code=-9)).transient is True  # killed (OOM)
    assert StageFailed("oracle", 255, dvc_tail.format(code=137)).transient is True
    assert StageFailed("oracle", -9, "").transient is True
    assert StageFailed("oracle", 1, "Traceback ...\nsqlite3.OperationalError: database is locked").transient is True


def test_weekly_retrain_deployment_has_schedule_and_work_pool(prefect_harness, monkeypatch) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.schedules import Cron

    monkeypatch.chdir(REPO_ROOT)
    config = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())
    entry = next(d for d in config["deployments"] if d["name"] == "weekly-retrain")
    path, _, attr = entry["entrypoint"].partition(":")
    flow = getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), attr)
    pool = entry["work_pool"]

    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool["name"], type="process"), overwrite=True)
    deployment = flow.to_deployment(
        name=entry["name"], description=entry.get("description"), parameters=entry["parameters"],
        schedules=[Cron(s["cron"], timezone=s.get("timezone"), active=s.get("active", True))
                   for s in entry["schedules"]],
        work_pool_name=pool["name"], work_queue_name=pool.get("work_queue_name"),
        job_variables=pool["job_variables"],
    )
    deployment_id = deployment.apply()

    with get_client(sync_client=True) as client:
        stored = client.read_deployment_by_name(f"{flow.name}/weekly-retrain")
    assert stored.id == deployment_id
    assert [s.schedule.cron for s in stored.schedules] == ["0 3 * * 1"]
    assert stored.schedules[0].schedule.timezone == "UTC" and stored.schedules[0].active
    assert stored.work_pool_name == "seqgan-gpu"
    assert stored.work_queue_name == "default"
    assert stored.job_variables["env"]["CUDA_VISIBLE_DEVICES"] == "0"
    assert stored.parameters == {"experiment": "synthetic", "profile": "paper", "seed": 0}
    assert stored.entrypoint == "pipelines/flows.py:retrain_flow"
