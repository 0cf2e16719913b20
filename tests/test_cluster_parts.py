"""The parts of sweeps on a cluster that need no server (fast): with no server configured
nothing changes (the gate's file lock, experiments' local artifact folders); lock entries
carried between clones; a report that names the cells a work pool could not finish; how a
lost worker is told from a live one; a local cluster stops only processes it recorded."""
from __future__ import annotations

import math
import subprocess
import sys
import time
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from conftest import REPO_ROOT

from pipelines import dvc_sync
from pipelines.registry import lock


def test_no_server_keeps_the_file_lock_next_to_sqlite(tmp_path, monkeypatch):
    monkeypatch.delenv(lock.LOCK_DSN_ENV, raising=False)
    monkeypatch.delenv(lock.LOCK_ENV, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no warning about machines
        assert lock.lock_dsn() is None
        with lock.registry_lock() as held:
            assert held == tmp_path / "mlflow.db.registry.lock"


def test_a_server_without_a_dsn_says_its_lock_is_this_machines(monkeypatch):
    monkeypatch.delenv(lock.LOCK_DSN_ENV, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    with pytest.warns(RuntimeWarning, match="this machine only"):
        assert lock.lock_dsn() is None
    monkeypatch.setenv(lock.LOCK_DSN_ENV, "postgresql://u@db:5432/mlflow")
    assert lock.lock_dsn() == "postgresql://u@db:5432/mlflow"
    monkeypatch.delenv(lock.LOCK_DSN_ENV)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql+psycopg2://u@db/mlflow")  # a store used directly
    assert lock.lock_dsn() == "postgresql://u@db/mlflow"


class FakeClient:
    def __init__(self):
        self.created = []

    def get_experiment_by_name(self, name):
        return None

    def create_experiment(self, name, artifact_location=None):
        self.created.append((name, artifact_location))
        return "1"


@pytest.mark.parametrize("uri, local", [("sqlite:///x/mlflow.db", True), ("http://127.0.0.1:5000", False)])
def test_experiments_keep_local_artifacts_unless_a_server_has_a_store(uri, local, monkeypatch, tmp_path):
    from pipelines import tracking

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("SEQGAN_ARTIFACT_ROOT", raising=False)
    fake = FakeClient()
    tracking._experiment_id(fake, "seqgan-synthetic")
    expected = (tmp_path / "mlartifacts" / "seqgan-synthetic").as_uri() if local else None
    assert fake.created == [("seqgan-synthetic", expected)]


def test_lock_entries_move_between_clones_and_keep_the_others(tmp_path):
    assert dvc_sync.split_address("comparison/dvc.yaml:train@synthetic-mle-0") == (
        Path("comparison/dvc.lock"), "train@synthetic-mle-0")
    assert dvc_sync.split_address("oracle") == (Path("dvc.lock"), "oracle")
    (tmp_path / "comparison").mkdir()
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"preprocess": {"cmd": "p"}}}))
    entry = {"cmd": "python -m pipelines.stages.compare synthetic mle 0", "outs": [{"path": "x", "md5": "ab"}]}
    dvc_sync.merge_lock_entries({"oracle": {"cmd": "o"}, "comparison/dvc.yaml:train@synthetic-mle-0": entry}, tmp_path)
    assert yaml.safe_load((tmp_path / "dvc.lock").read_text())["stages"] == {"preprocess": {"cmd": "p"},
                                                                          "oracle": {"cmd": "o"}}
    assert dvc_sync.lock_entry("comparison/dvc.yaml:train@synthetic-mle-0", tmp_path) == entry
    with pytest.raises(KeyError, match="never ran in this clone"):
        dvc_sync.lock_entry("comparison/dvc.yaml:train@synthetic-mle-1", tmp_path)


def _cell(seed: int, nll: float) -> dict:
    return {"seed": seed, "scores": {"nll_oracle": nll, "nll_test": nll - 1},
            "frontier": [{"temperature": t, "nll_oracle": nll + t - 1, "nll_test": nll - t} for t in (0.5, 1.0, 1.5)]}


def test_the_report_names_missing_cells_and_pairs_what_finished():
    from pipelines.config import parse_params
    from pipelines.stages import compare_report as report

    params = parse_params(yaml.safe_load((REPO_ROOT / "profiles/tiny.yaml").read_text()))
    results = {"synthetic": {"mle": {0: _cell(0, 4.0), 1: _cell(1, 4.2)}, "seqgan": {1: _cell(1, 4.0)}}}
    rows = {(r["method"], r["metric"]): r for r in report.summary_rows(results)}
    seqgan = rows["seqgan", "nll_oracle"]
    assert seqgan["n_seeds"] == 1 and seqgan["diff_vs_mle"] == pytest.approx(-0.2)  # paired on seed 1 only
    only_seqgan = {"synthetic": {"seqgan": {1: _cell(1, 4.0)}}}
    assert {r["verdict"] for r in report.summary_rows(only_seqgan)} == {"not comparable"}
    matched = [r for r in report.matched_rows(results, params) if r["experiment"] == "synthetic"]
    assert [(r["n_seeds"], r["n_failed"], r["n_matched"]) for r in matched] == [(2, 1, 1)]  # seed 0 failed
    text = report.summary_markdown(report.summary_rows(results), ["train@synthetic-seqgan-0"])
    assert "**Missing cells** (failed; not in these statistics): train@synthetic-seqgan-0." in text
    assert "Missing" not in report.summary_markdown(report.summary_rows(results))
    assert not math.isnan(seqgan["mean"])


def test_a_method_that_wins_only_on_the_seeds_it_survived_is_no_winner(monkeypatch):
    """Before, a diverged seed (no cell) simply left the statistics: a method better on the 2
    seeds it survived of 3 was named a winner, its seeds counted as "2/2 matched"."""
    from pipelines.config import parse_params
    from pipelines.stages import compare_report as report

    monkeypatch.chdir(REPO_ROOT)  # the answer names the profile of ./params.yaml
    params = parse_params(yaml.safe_load((REPO_ROOT / "profiles/tiny.yaml").read_text()))
    params = params.model_copy(update={"comparison": params.comparison.model_copy(
        update={"experiments": ["synthetic"], "methods": ["mle", "seqgan"], "seeds": [0, 1, 2]})})
    mle = {s: _cell(s, 4.0 + 0.1 * s) for s in (0, 1, 2)}
    survived = {"synthetic": {"mle": mle, "seqgan": {0: _cell(0, 3.9), 1: _cell(1, 4.0)}}}  # seed 2 diverged
    (row,) = report.matched_rows(survived, params)
    assert row["verdict"] == "better" and (row["n_seeds"], row["n_failed"], row["n_matched"]) == (3, 1, 2)
    text = report.answer([row], params)
    assert "no method beats MLE at matched diversity" in text
    assert "seqgan better on the seeds that finished" in text and "2/3 seeds matched, 1 failed" in text
    every = {"synthetic": {"mle": mle, "seqgan": {**survived["synthetic"]["seqgan"], 2: _cell(2, 4.1)}}}
    assert "beat MLE at matched diversity: seqgan" in report.answer(report.matched_rows(every, params), params)


def _worker(name: str, seconds_ago: float, interval: int = 3, status: str = "ONLINE"):
    return SimpleNamespace(name=name, heartbeat_interval_seconds=interval, status=SimpleNamespace(value=status),
                           last_heartbeat_time=datetime.now(timezone.utc) - timedelta(seconds=seconds_ago))


def test_a_worker_is_lost_when_its_heartbeats_stop():
    from pipelines.fanout import _lost_workers

    workers = [_worker("live", 2), _worker("silent", 20), _worker("offline", 1, status="OFFLINE"),
               _worker("slow", 60, interval=30)]
    client = SimpleNamespace(read_workers_for_work_pool=lambda pool: workers)
    assert _lost_workers(client, "seqgan-gpu", None) == {"silent", "offline"}  # 3 intervals, at least 15 s
    assert _lost_workers(client, "seqgan-gpu", 100) == {"offline"}


def test_stop_signals_only_a_recorded_process(tmp_path):
    from pipelines.cluster.processes import Service, spawn, stop

    log = tmp_path / "sleep.log"
    service = spawn("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], env={}, cwd=Path("/"), log=log)
    impostor = Service("sleeper", service.pid, service.started + 1000, str(log))  # same pid, another start time
    assert service.alive() and not impostor.alive()
    assert stop(impostor) is False and service.alive(), "a pid recorded for another process is never signalled"
    started = time.monotonic()
    assert stop(service, grace_s=5) is True and not service.alive() and time.monotonic() - started < 5


def test_the_cluster_cli_without_a_cluster_says_what_to_do(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pipelines.cluster", "sweep", "--dir", str(tmp_path)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "no cluster recorded" in result.stderr + result.stdout


def test_a_sweep_on_workers_needs_a_prefect_server(monkeypatch):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from pipelines.sweep_flows import sweep_flow

    with temporary_settings(updates={PREFECT_API_URL: None}), pytest.raises(RuntimeError, match="PREFECT_API_URL"):
        sweep_flow.fn()


def test_the_cluster_sweep_widens_params_as_seqgan_sweep_does(tmp_path, monkeypatch, capsys):
    """`python -m pipelines.cluster sweep --methods ...` goes through the CLI's own
    `widen_from_args` (it once called parse_methods without the generator kind: a
    TypeError); a method the params refuse is one line on stderr and exit 1. The flow
    itself is stubbed: no cluster is started."""
    from pipelines.cluster import __main__ as cluster_cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text((REPO_ROOT / "params.yaml").read_text())
    monkeypatch.setattr(cluster_cli, "_state", lambda run_dir: None)
    monkeypatch.setattr(cluster_cli, "client_env", lambda state: {})
    assert cluster_cli.main(["sweep", "--methods", "gan"]) == 1
    assert "comparison.methods" in capsys.readouterr().err
    import pipelines.sweep_flows

    monkeypatch.setattr(pipelines.sweep_flows, "sweep_flow", lambda **kwargs: (_ for _ in ()).throw(
        SystemExit("flow stubbed")))
    with pytest.raises(SystemExit, match="flow stubbed"):
        cluster_cli.main(["sweep", "--methods", "all", "--seeds", "2"])
    comparison = yaml.safe_load((tmp_path / "params.yaml").read_text())["comparison"]
    assert comparison["seeds"] == [0, 1] and "leakgan" not in comparison["methods"]
