"""What a second worker buys: the 4-cell tiny sweep (synthetic; MLE and SeqGAN; seeds 0 and 1)
on a local cluster (`pipelines.cluster.local`) with 1 worker, then with 2, each from scratch
(a fresh clone, cluster, DVC remote and tracking store), timed from `python -m pipelines.cluster
sweep` to its summary. Prints both times, their ratio and the machine's core count, and where a
flow run's time goes: the stage itself (its MLflow run) against the rest (a process, imports,
the deployment's pull step, `dvc pull`/`push`, waiting for a worker to poll), and the part that
runs in the aggregating clone whatever the number of workers (data stage, calibrate, report,
frontier). `--serial` also times `seqgan sweep` of the same params without any cluster.

Run from the repository root, with the code committed (workers clone HEAD):

    python benchmarks/bench_cluster.py [--serial]        # ~10 min on 2 cores
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's pipelines, whatever the venv's editable install points at

from pipelines.cluster.local import base_env, down, up  # noqa: E402

CELLS = {"experiments": ["synthetic"], "methods": ["mle", "seqgan"], "seeds": [0, 1]}


def scratch_repo(dest: Path) -> Path:
    """A clone of HEAD with the tiny profile and the 4 cells as params.yaml, committed."""
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(dest)], check=True)
    params = yaml.safe_load((dest / "profiles/tiny.yaml").read_text(encoding="utf-8"))
    params["comparison"] = CELLS
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    subprocess.run([*git, "commit", "--quiet", "-am", "bench: 4 cells"], cwd=dest, check=True)
    return dest


def breakdown(state) -> dict[str, float]:
    """Seconds of the sweep-stage flow runs, of the stages inside them, and their span."""
    from mlflow import MlflowClient
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: state.env["PREFECT_API_URL"]}), \
            get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("seqgan-sweep-stage/sweep-stage")
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])))
    tracking = MlflowClient(tracking_uri=state.env["MLFLOW_TRACKING_URI"])
    experiment = tracking.get_experiment_by_name("seqgan-synthetic")
    stages = [r for r in tracking.search_runs([experiment.experiment_id])
              if r.data.tags.get("seqgan.dvc_stage", "").startswith("comparison/") and r.info.end_time]
    return {"flow_runs": len(runs), "flow_run_s": sum((r.end_time - r.start_time).total_seconds() for r in runs),
            "stage_s": sum((r.info.end_time - r.info.start_time) / 1000 for r in stages),
            "span_s": (max(r.end_time for r in runs) - min(r.start_time for r in runs)).total_seconds()}


def timed_sweep(workers: int, base: Path) -> dict[str, float]:
    repo, run_dir = scratch_repo(base / f"workers{workers}" / "repo"), base / f"workers{workers}" / "run"
    state = up(repo, run_dir, workers=workers)
    try:
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "pipelines.cluster", "sweep", "--dir", str(run_dir)], cwd=repo,
                                env=base_env(), capture_output=True, text=True)
        seconds = time.monotonic() - started
        if result.returncode != 0:
            raise SystemExit(f"the sweep on {workers} worker(s) failed:\n{(result.stdout + result.stderr)[-4000:]}")
        return {"wall_s": seconds, **breakdown(state)}
    finally:
        down(run_dir)


def timed_serial(base: Path) -> float:
    repo = scratch_repo(base / "serial" / "repo")
    env = {**base_env(), "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}"}
    started = time.monotonic()
    subprocess.run([str(Path(sys.executable).parent / "seqgan"), "sweep"], cwd=repo, env=env, check=True,
                   capture_output=True)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serial", action="store_true", help="also time `seqgan sweep` without a cluster")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        results = {k: timed_sweep(k, Path(tmp)) for k in (1, 2)}
        serial = timed_serial(Path(tmp)) if args.serial else None
    print(f"4-cell tiny sweep (synthetic x {{mle, seqgan}} x seeds {{0, 1}}); {os.cpu_count()} cores; "
          f"load average {load:.1f} at the start")
    for k, r in results.items():
        local = r["wall_s"] - r["span_s"]
        print(f"  {k} worker(s): {r['wall_s']:6.0f} s  ({r['flow_runs']} flow runs: {r['flow_run_s']:.0f} s in all, "
              f"of which {r['stage_s']:.0f} s in the stages; {local:.0f} s in the aggregating clone)")
    if serial is not None:
        print(f"  serial `seqgan sweep`: {serial:.0f} s")
    print(f"  speed-up 1 -> 2 workers: {results[1]['wall_s'] / results[2]['wall_s']:.2f}x on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
