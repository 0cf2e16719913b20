"""A local cluster on 127.0.0.1 for a try (`make cluster-up` / `make cluster-down`).

What `up` starts, in order, each on a free port, recorded in <run dir>/cluster.json as it
goes (so `down` can stop a half-started cluster too):
- PostgreSQL (`postgres.py`): MLflow's backend store and the registry gate's advisory lock;
- the MLflow tracking server on it, with a proxied artifact store under <run dir>/artifacts;
- a Prefect server (its own PREFECT_HOME and SQLite database under <run dir>/prefect), the
  `seqgan-gpu` process work pool, and the deployments of prefect.yaml the sweep needs;
- K workers, each polling the pool from its own clone of the repository at HEAD
  (<run dir>/workers/worker-<k>/repo) and taking one flow run at a time, as a GPU node would;
- a DVC remote, a plain folder (<run dir>/dvc-remote).
<run dir>/cluster.env has the settings a shell needs to use it (`source` it). `down` stops
exactly the recorded processes (pid and start time must both match) and removes PostgreSQL's
data; the rest of the run dir stays for reading logs until the next `up`.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..executables import executable
from . import postgres
from .processes import ClusterError, Service, free_port, spawn, stop, wait_http

POOL = "seqgan-gpu"
DEPLOYMENTS = ("sweep-stage", "retrain")
STATE_FILE, ENV_FILE = "cluster.json", "cluster.env"
START_TIMEOUT_S = 180
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
         "DVC_NO_ANALYTICS": "1", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
         "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
# Settings of the cluster a process reads from its environment: never inherited from the caller's.
CLUSTER_VARS = ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "SEQGAN_REGISTRY_LOCK_DSN", "SEQGAN_DVC_REMOTE",
                "SEQGAN_WORKER_REPO", "SEQGAN_PIPELINE_RUN", "PREFECT_HOME")


@dataclass
class State:
    repo: str
    run_dir: str
    services: list[dict] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # what a client of the cluster sets
    postgres_dir: str | None = None
    workers: list[str] = field(default_factory=list)  # worker names, in start order

    @property
    def path(self) -> Path:
        return Path(self.run_dir) / STATE_FILE

    def save(self) -> None:
        self.path.write_text(json.dumps(self.__dict__, indent=1), encoding="utf-8")
        exports = "".join(f"export {k}={v}\n" for k, v in self.env.items())
        (Path(self.run_dir) / ENV_FILE).write_text(exports, encoding="utf-8")

    def add(self, service: Service) -> Service:
        self.services.append(service.to_dict())
        self.save()
        return service

    @classmethod
    def load(cls, run_dir: Path) -> "State | None":
        path = run_dir / STATE_FILE
        return cls(**json.loads(path.read_text(encoding="utf-8"))) if path.exists() else None


def base_env() -> dict[str, str]:
    """The caller's environment without any cluster setting, the venv first on PATH, quiet."""
    env = {k: v for k, v in os.environ.items() if k not in CLUSTER_VARS}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **QUIET}


def client_env(state: State) -> dict[str, str]:
    """The environment of a process that uses the cluster (a sweep, a gate, a test)."""
    return {**base_env(), **state.env, "PREFECT_HOME": str(Path(state.run_dir) / "client-prefect")}


def _prefect(state: State, *args: str, cwd: Path) -> str:
    result = subprocess.run([executable("prefect"), *args], cwd=cwd, env=client_env(state), capture_output=True,
                            text=True, timeout=300, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise ClusterError(f"`prefect {' '.join(args)}` failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return result.stdout


def _clone(repo: Path, dest: Path) -> Path:
    """A worker's clone: the repository at HEAD, as `git clone` on a GPU node would give."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(repo), str(dest)], check=True, timeout=300)
    return dest


def start_worker(state: State, name: str, heartbeat_s: int = 10) -> Service:
    """A process worker named `name` in its own clone, one flow run at a time. It asks for
    work every 2 s (Prefect's default, 10 s, is meant for cells of hours, not a try's)."""
    home = Path(state.run_dir) / "workers" / name
    clone = _clone(Path(state.repo), home / "repo")
    env = {**client_env(state), "PREFECT_HOME": str(home / "prefect"), "SEQGAN_WORKER_REPO": str(clone),
           "PREFECT_WORKER_HEARTBEAT_SECONDS": str(heartbeat_s), "PREFECT_WORKER_QUERY_SECONDS": "2",
           "VIRTUAL_ENV": str(Path(sys.executable).parents[1])}
    service = spawn(name, [executable("prefect"), "worker", "start", "--pool", POOL, "--type", "process",
                           "--name", name, "--limit", "1"], env=env, cwd=home, log=home / "worker.log")
    state.workers.append(name)
    return state.add(service)


def up(repo: Path, run_dir: Path, workers: int = 2, heartbeat_s: int = 10) -> State:
    """Start everything (see the module's docstring); on any failure, stop what started."""
    repo, run_dir = repo.resolve(), run_dir.resolve()
    if (old := State.load(run_dir)) is not None and any(Service(**s).alive() for s in old.services):
        raise ClusterError(f"a cluster recorded in {run_dir} is still running: `make cluster-down` first")
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    state = State(str(repo), str(run_dir))
    state.save()
    try:
        _start(state, workers, heartbeat_s)
    except BaseException:
        down(run_dir)
        raise
    return state


def _start(state: State, workers: int, heartbeat_s: int) -> None:
    run_dir, repo = Path(state.run_dir), Path(state.repo)
    pg = postgres.start(free_port(), "mlflow")
    state.postgres_dir = str(pg.folder)
    state.add(pg.service)
    state.env["SEQGAN_REGISTRY_LOCK_DSN"] = pg.dsn("mlflow")

    port = free_port()
    mlflow = state.add(spawn("mlflow", [
        executable("mlflow"), "server", "--backend-store-uri", pg.dsn("mlflow"),
        "--artifacts-destination", str(run_dir / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
        "--workers", "2"], env=base_env(), cwd=run_dir, log=run_dir / "mlflow.log"))
    state.env["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{port}"

    port = free_port()
    prefect = state.add(spawn("prefect-server", [
        executable("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env={**base_env(), "PREFECT_HOME": str(run_dir / "prefect")}, cwd=run_dir, log=run_dir / "prefect.log"))
    state.env["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    state.env["SEQGAN_DVC_REMOTE"] = str(run_dir / "dvc-remote")
    state.save()
    wait_http(mlflow, f"{state.env['MLFLOW_TRACKING_URI']}/health", START_TIMEOUT_S)
    wait_http(prefect, f"{state.env['PREFECT_API_URL']}/health", START_TIMEOUT_S)

    _prefect(state, "work-pool", "create", POOL, "--type", "process", "--overwrite", cwd=repo)
    for name in DEPLOYMENTS:
        _prefect(state, "--no-prompt", "deploy", "--name", name, cwd=repo)
    for k in range(workers):
        start_worker(state, f"worker-{k}", heartbeat_s)


def down(run_dir: Path) -> list[str]:
    """Stop every recorded process (workers first, PostgreSQL last) and remove PostgreSQL's
    data. Returns a line per service: stopped, or already gone."""
    state = State.load(run_dir.resolve())
    if state is None:
        return []
    report = []
    for record in reversed(state.services):
        service = Service(**record)
        stopped = postgres.stop_server(service) if service.name == "postgres" else stop(service)
        report.append(f"{service.name} (pid {service.pid}): {'stopped' if stopped else 'already gone'}")
    if state.postgres_dir:
        postgres.remove(Path(state.postgres_dir))
    still = [record["name"] for record in state.services if Service(**record).alive()]
    if still:
        raise ClusterError(f"still running after `down`: {', '.join(still)}")
    state.path.unlink()
    return report
