"""prefect.yaml against a real `prefect server start` and a real process worker.

One Prefect server on 127.0.0.1 for the module (its own PREFECT_HOME and SQLite database).
In a copy of the reproduced tiny repository the real CLI creates the `seqgan-gpu` work pool
and runs `prefect deploy --all`. Then:
- the server's scheduler turns the weekly cron of `weekly-retrain` into SCHEDULED flow runs
  on Mondays 03:00 UTC, queued in the pool (an ephemeral server never does this);
- `prefect deployment run seqgan-train/train` is picked up by `prefect worker start --run-once`,
  which runs the real `train_flow` in the repository named by SEQGAN_REPO (every stage is
  unchanged there, so it is quick) and leaves its `seqgan-training` artifact.
Every process started here runs in its own process group, killed on teardown.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID

import pytest

from conftest import free_port, stage_env
from pipelines.serving import stop_group

# Before anything imports prefect: settings are read from the environment (as in test_flows).
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="prefect-home-"))
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
PREFECT = str(BIN / "prefect")
SERVER_START_S = 120
SCHEDULE_WAIT_S = 90
WORKER_S = 300
SYNTHETIC_STAGES = {
    "oracle",
    *(f"{s}@synthetic" for s in ("pretrain_generator", "pretrain_discriminator", "adversarial", "evaluate")),
}


def tail(path: Path, n: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError as exc:
        return f"<no log: {exc}>"


@dataclass(frozen=True)
class Server:
    api_url: str
    home: Path
    log: Path

    def env(self, base: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in base.items() if not k.startswith("PREFECT_")}
        env.update(PREFECT_API_URL=self.api_url, PREFECT_HOME=str(self.home),
                   PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", COLUMNS="200")
        return env


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    srv = Server(f"http://127.0.0.1:{port}/api", base / "home", base / "server.log")
    srv.home.mkdir()
    env = srv.env(dict(os.environ))
    env.pop("PREFECT_API_URL")  # the server itself must not point at an API
    with srv.log.open("wb") as log:
        proc = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                cwd=base, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"prefect server exited with {proc.returncode}:\n{tail(srv.log)}")
            try:
                with urllib.request.urlopen(f"{srv.api_url}/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"prefect server not healthy after {SERVER_START_S} s:\n{tail(srv.log)}")
            time.sleep(1)
        yield srv
    finally:
        stop_group(proc)


def prefect_cli(server: Server, cwd: Path, env: dict[str, str], *args: str, timeout: float = 120) -> str:
    result = subprocess.run([PREFECT, *args], cwd=cwd, env=server.env(env), capture_output=True,
                            text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise AssertionError(f"prefect {' '.join(args)} exited {result.returncode}:\n{output[-4000:]}")
    return output


@pytest.fixture(scope="module")
def deployed(server: Server, pipeline_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the reproduced tiny repository, deployed from its prefect.yaml."""
    repo = tmp_path_factory.mktemp("prefect-deploy") / "repo"
    shutil.copytree(pipeline_repo, repo, symlinks=True)  # pipeline_repo is shared: leave it alone
    env = {**stage_env(repo), "SEQGAN_REPO": str(repo)}
    prefect_cli(server, repo, env, "work-pool", "create", "seqgan-gpu", "--type", "process")
    prefect_cli(server, repo, env, "--no-prompt", "deploy", "--all")  # both deployments, read back below
    return repo


@contextmanager
def client(server: Server) -> Iterator:
    """A sync client for this server, whatever else this session configured (e.g. a test harness)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: server.api_url}), get_client(sync_client=True) as c:
        yield c


def test_weekly_cron_schedules_runs_in_the_gpu_pool(server: Server, deployed: Path) -> None:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with client(server) as c:
        deployment = c.read_deployment_by_name("seqgan-retrain/weekly-retrain")
        assert deployment.work_pool_name == "seqgan-gpu"
        assert deployment.work_queue_name == "default"
        assert deployment.entrypoint == "pipelines/flows.py:retrain_flow"
        assert deployment.parameters == {"experiment": "synthetic", "profile": "paper", "seed": 0}
        assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in deployment.schedules] == [
            ("0 3 * * 1", "UTC", True)]
        env = deployment.job_variables["env"]
        assert env["CUDA_VISIBLE_DEVICES"] == "0"
        # `{{ $VAR }}` placeholders are filled from the deploying shell's environment.
        assert env["MLFLOW_TRACKING_URI"] == f"sqlite:///{deployed / 'mlflow.db'}"
        train = c.read_deployment_by_name("seqgan-train/train")
        assert (train.work_pool_name, train.schedules, train.job_variables["env"]["CUDA_VISIBLE_DEVICES"]) == (
            "seqgan-gpu", [], "0")
        step = deployment.pull_steps[0]["prefect.deployments.steps.set_working_directory"]
        assert step["directory"] == str(deployed)

        # The server's scheduler (not the deploy command) creates the runs: poll for them.
        only_weekly = DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
        deadline = time.monotonic() + SCHEDULE_WAIT_S
        while not (runs := c.read_flow_runs(deployment_filter=only_weekly)):
            if time.monotonic() > deadline:
                pytest.fail(f"no flow run scheduled within {SCHEDULE_WAIT_S} s:\n{tail(server.log)}")
            time.sleep(2)
        time.sleep(2)  # the scheduler inserts its batch at once; re-read to see all of it
        runs = c.read_flow_runs(deployment_filter=only_weekly)
        queued = c.get_scheduled_flow_runs_for_work_pool(
            "seqgan-gpu", scheduled_before=datetime.now(timezone.utc) + timedelta(days=400))

    now = datetime.now(timezone.utc)
    starts = sorted(r.expected_start_time for r in runs)
    assert len(runs) >= 2, runs
    assert {r.state.type.value for r in runs} == {"SCHEDULED"}
    assert {r.work_queue_name for r in runs} == {"default"}
    assert {r.parameters["profile"] for r in runs} == {"paper"}
    for start in starts:
        utc = start.astimezone(timezone.utc)
        assert (utc.weekday(), utc.hour, utc.minute, utc.second) == (0, 3, 0, 0), utc
        assert utc > now
    assert starts[0] - now <= timedelta(days=7)
    assert all(b - a == timedelta(days=7) for a, b in zip(starts, starts[1:])), starts
    # What a worker polling the pool gets: these very runs.
    assert {r.id for r in runs} <= {q.flow_run.id for q in queued}


def test_process_worker_runs_the_train_deployment(server: Server, deployed: Path, tmp_path: Path) -> None:
    from prefect.client.schemas.filters import (
        ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId,
    )

    env = stage_env(deployed)
    out = prefect_cli(server, deployed, env, "deployment", "run", "seqgan-train/train",
                      "--param", "experiment=synthetic")
    found = re.search(r"UUID: ([0-9a-f-]{36})", out)
    assert found, out
    run_id = UUID(found.group(1))

    # The worker starts elsewhere: the deployment's pull step must move it into the repository
    # (the path SEQGAN_REPO had when deploying), and the entrypoint must import without the
    # repository on PYTHONPATH.
    worker_env = dict(env)
    worker_env.pop("PYTHONPATH", None)
    worker_env.pop("SEQGAN_REPO", None)
    worker_log = tmp_path / "worker.log"
    with worker_log.open("wb") as log:
        worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", "seqgan-gpu", "--run-once"],
                                  cwd=tmp_path, env=server.env(worker_env), stdout=log,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        worker.wait(timeout=WORKER_S)
    except subprocess.TimeoutExpired:
        pass
    finally:
        timed_out = worker.returncode is None
        stop_group(worker)

    with client(server) as c:
        run = c.read_flow_run(run_id)
        logs = c.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])), limit=200)
        artifacts = c.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["seqgan-training"])),
                                     flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
    flow_logs = "\n".join(f"{entry.level} {entry.message}" for entry in logs)
    context = (f"worker {'timed out' if timed_out else f'exited {worker.returncode}'}; "
               f"flow run state {run.state.type.value if run.state else None}\n"
               f"--- flow run logs ---\n{flow_logs[-6000:]}\n--- worker log ---\n{tail(worker_log)}")
    assert not timed_out, context
    assert run.state is not None and run.state.is_completed(), context
    assert run.deployment_id is not None and run.parameters == {"experiment": "synthetic"}, context
    assert "set_working_directory' completed" in flow_logs, context

    assert len(artifacts) == 1, context
    rows = dict(re.findall(r"^\| (\S+) \| (ran|skipped \(unchanged\)) \|$", artifacts[0].data, re.M))
    assert rows == dict.fromkeys(SYNTHETIC_STAGES, "skipped (unchanged)"), artifacts[0].data
    assert "## synthetic" in artifacts[0].data
