"""The comparison sweep fanned out to a Prefect work pool (`make cluster-demo`; README:
"Sweeps on a cluster").

`sweep_flow` runs in the clone that aggregates (any machine that reaches the Prefect server,
the MLflow server and the DVC remote), with that clone's params.yaml:
1. here: the data stages the sweep reads (`oracle`, `preprocess`), pushed to the remote;
2. on the workers: each seed's pretraining (`pretrain@<experiment>-<seed>`), then each cell
   (`train@<experiment>-<method>-<seed>`) once its seed's pretraining is done, so a seed is
   pretrained once; each is a flow run of the `sweep-stage` deployment (prefect.yaml), in
   which the worker pulls what the stage reads from the remote and pushes what it wrote.
   Stages already up to date here are not run again (as with `dvc repro`);
3. here again: every finished stage's lock entry merged and outputs pulled
   (`pipelines.dvc_sync`), then `calibrate`, `report` and `frontier`: the commands
   `make sweep` runs, on the same bytes, so summary.csv and frontier.csv are a serial sweep's.
A cell that still fails after its retries is left out and named (`report` lists missing
cells); the others are kept. Lost workers: `pipelines.fanout`.

Without PREFECT_API_URL there are no workers to fan out to: `make sweep` is the serial sweep.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from . import dvc_sync
from .fanout import Job, fan_out, publish_result
from .flows import _pipeline_run, run_stage
from .stage_graph import StageNode, load_stage_graph
from .tracking import git_revision

STAGE_DEPLOYMENT = "seqgan-sweep-stage/sweep-stage"
LOCK_ARTIFACT = "seqgan-dvc-lock"
REMOTE_ENV = "SEQGAN_DVC_REMOTE"
ON_WORKERS = ("pretrain", "train")  # the comparison stages that fan out; the rest run here


class WrongRevision(RuntimeError):
    pass


def _base(node: StageNode) -> str:
    return node.name.rsplit(":", 1)[-1].split("@", 1)[0]


def _ancestors(nodes: list[StageNode]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for node in nodes:  # topological order: every upstream node is already resolved
        found[node.name] = set(node.upstream).union(*(found[u] for u in node.upstream))
    return found


@flow(name="seqgan-sweep-stage", retries=1, retry_delay_seconds=10, log_prints=True)
def sweep_stage_flow(stage: str, upstream: dict[str, dict], params_yaml: str, remote: str, pipeline_run: str,
                     tracking_uri: str | None = None, revision: str | None = None) -> dict[str, dict]:
    """On a worker, in its clone: one stage of a sweep. Pulls the outputs of `upstream` (stage
    address -> its lock entry), runs `stage` with the sweep's params, pushes its outputs and
    publishes its lock entry (artifact `seqgan-dvc-lock`)."""
    if revision and (here := git_revision()) != revision:
        raise WrongRevision(f"this clone ({Path.cwd()}) is at {here}, the sweep at {revision}: "
                            "check out the sweep's revision on this worker")
    params = Path("params.yaml")
    if params.read_text(encoding="utf-8") != params_yaml:
        params.write_text(params_yaml, encoding="utf-8")
    if tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    name = dvc_sync.remote_name(remote)
    dvc_sync.merge_lock_entries(upstream)
    dvc_sync.pull(upstream, name)
    run_stage(stage, pipeline_run)
    entries = {stage: dvc_sync.lock_entry(stage)}
    dvc_sync.push(entries, name)
    publish_result(entries, LOCK_ARTIFACT, f"DVC lock entry of {stage}, whose outputs are in the remote")
    return entries


def _default_remote() -> str:
    from dvc.repo import Repo

    if remote := os.environ.get(REMOTE_ENV):
        return remote
    with Repo(".") as repo:
        if remote := repo.config.get("core", {}).get("remote"):
            return remote
    raise RuntimeError(f"a sweep on workers needs a DVC remote they share: set {REMOTE_ENV} (a URL or path) "
                       "or a default remote (`dvc remote add -d ...`)")


@flow(name="seqgan-sweep", log_prints=True)
def sweep_flow(remote: str | None = None, deployment: str = STAGE_DEPLOYMENT, resubmits: int = 1,
               timeout_s: float = 6 * 3600, lost_after_s: float | None = None) -> dict:
    """The comparison sweep of this clone's params.yaml on the work pool behind `deployment`;
    returns each fanned-out stage's outcome, the failed ones, and any that are stale here."""
    from prefect.settings import PREFECT_API_URL

    from . import tracking
    from .config import load_params
    from .contract import kind_of

    if not PREFECT_API_URL.value():  # an ephemeral server has no workers polling it
        raise RuntimeError("a sweep on workers needs a Prefect server they poll: set PREFECT_API_URL "
                           "(`make cluster-up` prints it), or run `make sweep` for the serial sweep")
    logger = get_run_logger()
    remote = remote or _default_remote()
    local_remote = dvc_sync.remote_name(remote)
    pipeline_run, params = _pipeline_run(), load_params()
    nodes = load_stage_graph(pipeline="comparison")
    ancestors = _ancestors(nodes)
    before = [n.name for n in nodes if n.pipeline == "training"]
    fanned = [n.name for n in nodes if n.pipeline == "comparison" and _base(n) in ON_WORKERS]
    after = [n.name for n in nodes if n.name not in before and n.name not in fanned]

    for name in before:
        run_stage(name, pipeline_run)
    entries = {name: dvc_sync.lock_entry(name) for name in before}
    dvc_sync.push(entries, local_remote)

    jobs = {name: Job(name, tuple(a for a in ancestors[name] if a in fanned)) for name in fanned}
    changed, current = dvc_sync.stale(fanned), []
    for name in fanned:  # as `dvc repro` would, leave what is up to date here (and upstream) alone
        if name not in changed and all(a in current for a in jobs[name].after):
            current.append(name)
    for name in current:
        jobs[name].status, jobs[name].result = "done", {name: dvc_sync.lock_entry(name)}
        jobs[name].reason = "up to date here: not run"
    dvc_sync.push(current, local_remote)  # workers pull a seed's pretrained models from there
    common = {"params_yaml": Path("params.yaml").read_text(encoding="utf-8"), "remote": remote,
              "pipeline_run": pipeline_run, "tracking_uri": os.environ.get("MLFLOW_TRACKING_URI"),
              "revision": git_revision()}

    def parameters(job: Job) -> dict:
        upstream = {a: entries[a] if a in entries else jobs[a].result[a] for a in sorted(ancestors[job.key])}
        return {"stage": job.key, "upstream": upstream, **common}

    def close_runs(job: Job, attempt) -> None:  # the lost worker cannot mark its MLflow run itself
        experiment = job.key.split("@", 1)[1].split("-", 1)[0]
        tracking.close_stage_runs(kind_of(experiment).mlflow_experiment(params), job.key,
                                  f"worker {attempt.worker} lost mid-stage (flow run {attempt.flow_run_id})")

    fan_out(jobs, deployment, parameters, result_artifact=LOCK_ARTIFACT, resubmits=resubmits,
            timeout_s=timeout_s, lost_after_s=lost_after_s, on_lost=close_runs, log=logger.info)

    done = {k: j.result[k] for k, j in jobs.items() if j.status == "done"}
    failed = {k: j.reason for k, j in jobs.items() if j.status == "failed"}
    dvc_sync.merge_lock_entries(done)
    dvc_sync.pull(done, local_remote)
    for name in failed:  # whatever an earlier sweep left there does not belong to these params
        for path in dvc_sync.outputs(name):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    for name in after:
        run_stage(name, pipeline_run)
    outcome = {"cells": {k: j.to_dict() for k, j in jobs.items()}, "failed": failed,
               "stale": dvc_sync.stale(done), "pipeline_run": pipeline_run}
    if os.environ.get("MLFLOW_TRACKING_URI"):  # else each worker logged to a store of its own
        tracking.finish_pipeline_runs([pipeline_run, f"{pipeline_run}-comparison"],
                                      "FAILED" if failed or outcome["stale"] else "FINISHED")
    create_markdown_artifact(_markdown(outcome), key="seqgan-sweep", description="Where each stage of the sweep ran")
    return outcome


def _markdown(outcome: dict) -> str:
    lines = ["# Comparison sweep on the work pool", "", "| stage | outcome | workers (attempts) |", "|---|---|---|"]
    for key, cell in outcome["cells"].items():
        workers = ", ".join(f"{a['worker'] or '?'} ({a['state']})" for a in cell["attempts"])
        lines.append(f"| {key} | {cell['status']}{': ' + cell['reason'] if cell['reason'] else ''} | {workers} |")
    if outcome["stale"]:
        lines += ["", f"Stale here (a worker's code or params differ from this clone's): {sorted(outcome['stale'])}"]
    return "\n".join(lines) + "\n"
