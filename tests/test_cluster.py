"""Sweeps on a cluster, for real on 127.0.0.1 (issue 16): PostgreSQL, the MLflow server on it,
a Prefect server, the `seqgan-gpu` pool with 2 process workers in clones of their own, and a
DVC remote folder, all started by `pipelines.cluster.local.up` (what `make cluster-up` runs).

One cluster for the module. The 4-cell tiny sweep (synthetic; MLE and SeqGAN; seeds 0 and 1)
runs once through `python -m pipelines.cluster sweep`; while it runs, one worker is SIGKILLed
(with its flow run and stage) in the middle of a cell. Then:
- every stage ran on a worker and is tracked in the MLflow server, artifacts readable;
- the killed cell was run again on the other worker, nothing else ran twice;
- its cells score exactly as the same cells of a serial `seqgan sweep` (conftest's `sweep_repo`),
  and its summary and frontier rows equal that sweep's synthetic rows;
- two gates racing through the server leave exactly one champion;
- `down` stops exactly the processes `up` started.
"""
from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import yaml

from conftest import copy_project, dvc

pytestmark = pytest.mark.slow

CELLS = {"experiments": ["synthetic"], "methods": ["mle", "seqgan"], "seeds": [0, 1]}
STAGES = {f"comparison/dvc.yaml:pretrain@synthetic-{s}" for s in (0, 1)} | {
    f"comparison/dvc.yaml:train@synthetic-{m}-{s}" for m in ("mle", "seqgan") for s in (0, 1)}
SWEEP_S = 900
KILL_WAIT_S = 600


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The clone that aggregates: the tiny profile with the 4 cells, committed (workers clone it)."""
    root = copy_project(tmp_path_factory.mktemp("cluster") / "repo")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["comparison"] = CELLS
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qam", "4 cells"],
                   cwd=root, check=True)
    return root


@pytest.fixture(scope="module")
def cluster(repo: Path, tmp_path_factory: pytest.TempPathFactory):
    from pipelines.cluster import postgres
    from pipelines.cluster.local import State, down, up
    from pipelines.cluster.processes import ClusterError

    try:
        postgres.check()
    except ClusterError as exc:
        if os.environ.get("CI"):  # CI has the distribution's PostgreSQL: its absence is a broken image
            raise
        pytest.skip(f"no PostgreSQL server to start here: {exc}")
    run_dir = tmp_path_factory.mktemp("cluster-run")
    started = time.monotonic()
    state = up(repo, run_dir, workers=2, heartbeat_s=3)
    print(f"cluster up in {time.monotonic() - started:.0f} s")
    try:
        yield state
    finally:
        if State.load(run_dir) is not None:
            down(run_dir)


@contextmanager
def prefect_client(state) -> Iterator:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: state.env["PREFECT_API_URL"]}), \
            get_client(sync_client=True) as client:
        yield client


def mlflow_client(state):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=state.env["MLFLOW_TRACKING_URI"])


def stage_runs(state) -> dict[str, list]:
    """Flow runs of the sweep-stage deployment by stage, oldest first."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    with prefect_client(state) as client:
        deployment = client.read_deployment_by_name("seqgan-sweep-stage/sweep-stage")
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                                     sort=FlowRunSort.EXPECTED_START_TIME_ASC)
    found: dict[str, list] = {}
    for run in sorted(runs, key=lambda r: r.created):
        found.setdefault(run.parameters["stage"], []).append(run)
    return found


def mlflow_runs(state, stage: str) -> list:
    client = mlflow_client(state)
    experiment = client.get_experiment_by_name("seqgan-synthetic")
    return client.search_runs([experiment.experiment_id], filter_string=f"tags.`seqgan.dvc_stage` = '{stage}'")


def kill_tree(pid: int) -> None:
    """SIGKILL a worker and everything under it at once: a node that is gone."""
    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


def kill_a_worker_mid_cell(state, sweep: subprocess.Popen) -> tuple[str, str]:
    """Wait for a cell whose stage is running (its MLflow run RUNNING), then SIGKILL its worker.
    A cell of the last seed: the other worker then has one cell more to run, not the sweep's
    second half alone (the test stays shorter; where the kill lands does not change what it shows)."""
    deadline = time.monotonic() + KILL_WAIT_S
    while time.monotonic() < deadline and sweep.poll() is None:
        for stage, runs in stage_runs(state).items():
            run = runs[-1]
            worker = run.labels.get("prefect.worker.name")
            if ":train@" in stage and stage.endswith("-1") and run.state.is_running() and worker and any(
                    r.info.status == "RUNNING" for r in mlflow_runs(state, stage)):
                (service,) = [s for s in state.services if s["name"] == worker]
                kill_tree(service["pid"])
                return worker, stage
        time.sleep(1)
    raise AssertionError("no cell was seen running on a worker")


@dataclass(frozen=True)
class Swept:
    returncode: int
    output: str
    killed_worker: str
    killed_stage: str
    seconds: float


@pytest.fixture(scope="module")
def swept(cluster, repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Swept:
    from pipelines.cluster.local import base_env

    log = tmp_path_factory.mktemp("sweep") / "sweep.log"
    started = time.monotonic()
    with log.open("wb") as out:
        sweep = subprocess.Popen([sys.executable, "-m", "pipelines.cluster", "sweep", "--dir", cluster.run_dir,
                                  "--lost-after", "12", "--timeout", str(SWEEP_S)],
                                 cwd=repo, env=base_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        worker, stage = kill_a_worker_mid_cell(cluster, sweep)
        sweep.wait(timeout=SWEEP_S + 60)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    seconds = time.monotonic() - started
    print(f"sweep with a worker killed mid-cell: {seconds:.0f} s")
    return Swept(sweep.returncode, log.read_text(errors="replace"), worker, stage, seconds)


def test_every_stage_ran_on_a_worker_and_is_tracked_in_the_server(swept: Swept, cluster, repo: Path) -> None:
    assert swept.returncode == 0, swept.output[-6000:]
    runs = stage_runs(cluster)
    assert set(runs) == STAGES, swept.output[-3000:]
    for stage, attempts in runs.items():
        assert [r.state.type.value for r in attempts][-1] == "COMPLETED", (stage, swept.output[-3000:])
    assert {r.labels.get("prefect.worker.name") for a in runs.values() for r in a} == {"worker-0", "worker-1"}

    client = mlflow_client(cluster)
    for stage in STAGES:
        finished = [r for r in mlflow_runs(cluster, stage) if r.info.status == "FINISHED"]
        assert len(finished) == 1, stage
        assert finished[0].info.artifact_uri.startswith("mlflow-artifacts:/")  # the server's store
    parents = {r.data.tags["mlflow.parentRunId"] for stage in STAGES for r in mlflow_runs(cluster, stage)}
    assert len(parents) == 1 and client.get_run(parents.pop()).info.status == "FINISHED"
    cell = next(r for r in mlflow_runs(cluster, "comparison/dvc.yaml:train@synthetic-seqgan-1")
                if r.info.status == "FINISHED")
    png = Path(client.download_artifacts(cell.info.run_id, "plots/curve.png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The aggregating clone holds every stage's outputs and lock entry: nothing is stale.
    assert "up to date" in dvc(repo, "status", "comparison/dvc.yaml").stdout


def test_the_killed_workers_cell_ran_again_on_the_other_worker(swept: Swept, cluster) -> None:
    runs = stage_runs(cluster)
    first, second = runs[swept.killed_stage]
    other = ({"worker-0", "worker-1"} - {swept.killed_worker}).pop()
    assert (first.state.type.value, first.labels["prefect.worker.name"]) == ("CRASHED", swept.killed_worker)
    assert "lost" in first.state.message
    assert (second.state.type.value, second.labels["prefect.worker.name"]) == ("COMPLETED", other)
    assert all(len(a) == 1 for stage, a in runs.items() if stage != swept.killed_stage), "nothing else ran twice"
    tracked = sorted((r.info.status, r.data.tags.get("seqgan.error", "")) for r in mlflow_runs(cluster, swept.killed_stage))
    assert [status for status, _ in tracked] == ["FINISHED", "KILLED"]
    assert f"worker {swept.killed_worker} lost" in tracked[1][1]


def test_the_cells_equal_a_serial_sweeps(swept: Swept, repo: Path, sweep_repo) -> None:
    """The cluster's cells (a worker killed mid-cell included) score exactly as the same cells
    of a serial `seqgan sweep` (conftest's, which also sweeps the real experiment)."""
    serial = sweep_repo[0]
    cells = sorted((repo / "comparison/runs").rglob("scores.json"))
    assert len(cells) == len(CELLS["methods"]) * len(CELLS["seeds"])
    for scores in cells:
        assert json.loads(scores.read_text()) == json.loads((serial / scores.relative_to(repo)).read_text()), scores
    for name in ("summary.csv", "frontier.csv"):  # the serial one's have the real experiment's rows (and columns) too
        ours = read_csv(repo / "comparison" / name)
        theirs = [row for row in read_csv(serial / "comparison" / name) if row["experiment"] == "synthetic"]
        assert ours == [{k: row[k] for k in ours[0]} for row in theirs], name
        assert all(row[k] == "" for row in theirs for k in row.keys() - ours[0].keys()), name


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


GATE = textwrap.dedent("""
    import dataclasses, json, sys, time
    from pathlib import Path
    from pipelines import registry
    name, version, ready, go = sys.argv[1:5]
    registry.client().get_registered_model(name)  # warm up: imports, connections
    Path(ready).touch()
    while not Path(go).exists():
        time.sleep(0.01)
    decision = registry.promote(name, version, metric="nll", higher_is_better=False, margin=0.05)
    print(json.dumps(dataclasses.asdict(decision)))
""")


def test_two_gates_racing_through_the_server_leave_one_champion(cluster, repo: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines import registry
    from pipelines.cluster.local import client_env
    from pipelines.registry.lock import advisory_lock

    env = client_env(cluster)
    for key in ("MLFLOW_TRACKING_URI", "SEQGAN_REGISTRY_LOCK_DSN"):
        monkeypatch.setenv(key, env[key])
    client = mlflow_client(cluster)
    run = client.create_run(client.create_experiment("gate-race"))
    client.log_text(run.info.run_id, "stand-in", "model/README.txt")  # the gate reads tags and aliases only
    name = "race"
    client.create_registered_model(name)

    def version(nll: float) -> str:
        tags = {"metric.nll": repr(nll), "data_version": "d1", "scoring_version": "s1",
                "experiment_kind": "synthetic"}
        return str(client.create_model_version(name, f"{run.info.artifact_uri}/model", run.info.run_id, tags=tags).version)

    base, good, best = version(3.0), version(2.5), version(2.0)
    registry.promote(name, base, metric="nll", higher_is_better=False, margin=0.05)

    # The lock is the database's: held here, a gate in another thread waits for it.
    done = threading.Event()
    with advisory_lock(env["SEQGAN_REGISTRY_LOCK_DSN"]):
        gate = threading.Thread(target=lambda: (registry.promote(name, base, metric="nll", higher_is_better=False,
                                                                 margin=0.05), done.set()))
        gate.start()
        assert not done.wait(1.5), "a gate ran while the advisory lock was held elsewhere"
    gate.join(30)
    assert done.is_set()

    # Two gate processes, as on two machines: each its own file lock, only the database in common.
    go, procs = tmp_path / "go", []
    for v in (good, best):
        gate_env = {**env, "SEQGAN_REGISTRY_LOCK": str(tmp_path / f"machine-{v}.lock")}
        procs.append(subprocess.Popen([sys.executable, "-c", GATE, name, v, str(tmp_path / f"ready-{v}"), str(go)],
                                      cwd=repo, env=gate_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{v}").exists() for v in (good, best)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.05)
    go.touch()
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-3000:] for _, err in results]
    decisions = [json.loads(out.strip().splitlines()[-1]) for out, _ in results]

    assert str(client.get_model_version_by_alias(name, "champion").version) == best
    first = [d for d in decisions if d["champion_before"] == base]
    assert len(first) == 1, decisions  # serialised: exactly one gate saw the old champion
    (second,) = [d for d in decisions if d is not first[0]]
    assert second["champion_before"] == first[0]["champion_after"]
    for v in (good, best):  # every decision recorded on its version
        tags = client.get_model_version(name, v).tags
        assert tags["gate.outcome"] in ("promoted", "rejected") and "gate:" in client.get_model_version(name, v).description


def _port_open(url: str) -> bool:
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, int(port))) == 0


def test_down_stops_exactly_what_up_started(cluster) -> None:
    from pipelines.cluster.local import down
    from pipelines.cluster.processes import Service

    services = [Service(**s) for s in cluster.services]
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    try:
        report = down(Path(cluster.run_dir))
        assert len(report) == len(services)
        assert not [s.name for s in services if s.alive()]
        assert not any(_port_open(cluster.env[k]) for k in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL"))
        assert not Path(cluster.postgres_dir).exists()
        assert bystander.poll() is None, "a process the cluster did not start was stopped"
    finally:
        os.kill(bystander.pid, signal.SIGKILL)
        bystander.wait()
