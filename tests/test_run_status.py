"""A stage that is stopped never leaves its MLflow run RUNNING: SIGTERM closes it as KILLED
at once; after a SIGKILL, which nothing can catch, the next run of the stage closes it."""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import stage_env

pytestmark = pytest.mark.slow
STAGE = "adversarial@synthetic"


def runs(root: Path) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("seqgan-synthetic")
    return client.search_runs([experiment.experiment_id], filter_string=f"tags.`seqgan.dvc_stage` = '{STAGE}'")


def start_and_stop(root: Path, sig: signal.Signals) -> subprocess.CompletedProcess:
    before = {r.info.run_id for r in runs(root)}
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.stages.adversarial", "synthetic"], cwd=root,
                            env=stage_env(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(r.info.run_id not in before and r.info.status == "RUNNING" for r in runs(root)):
        assert proc.poll() is None and time.monotonic() < deadline, "the stage never opened its run"
        time.sleep(0.2)
    time.sleep(1.0)  # into training
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture()
def repo(pipeline_repo: Path, tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(pipeline_repo, root, symlinks=True)
    return root


def test_sigterm_marks_the_run_killed_and_says_so(repo: Path) -> None:
    result = start_and_stop(repo, signal.SIGTERM)
    assert result.returncode == 130, result.stderr[-3000:]
    assert "stopped: stopped by signal SIGTERM" in result.stderr and "Traceback" not in result.stderr
    newest = max(runs(repo), key=lambda r: r.info.start_time)
    assert newest.info.status == "KILLED"


def test_a_sigkilled_run_is_closed_by_the_next_run_of_its_stage(repo: Path) -> None:
    start_and_stop(repo, signal.SIGKILL)
    killed = max(runs(repo), key=lambda r: r.info.start_time)
    assert killed.info.status == "RUNNING"  # nothing could close it
    from mlflow import MlflowClient

    from pipelines.tracking import close_abandoned_runs

    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    closed = close_abandoned_runs(client, killed.info.experiment_id, STAGE)
    assert closed == [killed.info.run_id]
    run = client.get_run(killed.info.run_id)
    assert run.info.status == "KILLED" and "ended without closing its run" in run.data.tags["seqgan.error"]
