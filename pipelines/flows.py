"""Prefect flows around the DVC pipeline.

- `train_flow`: every DVC stage (read from dvc.yaml) as a Prefect task, in dependency
  order. Each task is `dvc repro --single-item <stage>`, so DVC decides what is stale: an
  unchanged stage is skipped, not re-run.
- `retrain_flow`: what the weekly schedule runs: refresh inputs, train, promote.
- `promotion_flow`: the registry gate for the version the last `evaluate` registered.
- `comparison_flow`: the comparison sweep (comparison/dvc.yaml), the same way;
  `pipelines.sweep_flows.sweep_flow` fans it out to a work pool's workers instead.

Flows run with no server at all (Prefect's ephemeral mode), against `prefect server
start`, or on a worker of a work pool (see prefect.yaml and the README).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from .config import apply_profile, load_params
from .contract import EXPERIMENTS, Artifacts, kind_of
from .executables import executable
from .stage_graph import load_stage_graph, stages_for

# Exit code 1 with an "error:" line is a stage's own verdict (bad params, failed data
# gate, diverged training): retrying cannot help. Anything else (killed, OOM, a locked
# database, a lost GPU) may be transient and is retried.
DETERMINISTIC_EXIT = 1


# `dvc repro` itself exits 255 whenever a stage command fails and reports the command's
# own exit code as "failed to run: <cmd>, exited with N": classify by that code.
_STAGE_EXIT = re.compile(r"failed to run: .*, exited with (-?\d+)")


def stage_exit_code(returncode: int, log_tail: str) -> int:
    """The stage command's exit code (from DVC's message), else the process's own."""
    found = _STAGE_EXIT.findall(log_tail)
    return int(found[-1]) if found else returncode


class StageFailed(RuntimeError):
    def __init__(self, stage: str, returncode: int, log_tail: str) -> None:
        self.stage, self.returncode = stage, returncode
        self.exit_code = stage_exit_code(returncode, log_tail)
        self.transient = not (self.exit_code == DETERMINISTIC_EXIT and "error:" in log_tail)
        kind = "transient failure, retried" if self.transient else "failed"
        super().__init__(f"stage {stage!r} {kind} (exit {self.exit_code}):\n{log_tail}")


def retry_transient(task, task_run, state) -> bool:
    try:
        state.result()
    except StageFailed as exc:
        return exc.transient
    except Exception:
        return True
    return False


@dataclass(frozen=True)
class StageOutcome:
    stage: str
    skipped: bool


@task(retries=2, retry_delay_seconds=10, retry_condition_fn=retry_transient, task_run_name="{stage}")
def run_stage(stage: str, pipeline_run: str) -> StageOutcome:
    logger = get_run_logger()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "SEQGAN_PIPELINE_RUN": pipeline_run}
    result = subprocess.run([executable("dvc"), "repro", "--single-item", stage], capture_output=True, text=True, env=env)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise StageFailed(stage, result.returncode, "\n".join(output.strip().splitlines()[-25:]))
    skipped = f"Running stage '{stage}'" not in output
    logger.info("%s: %s", stage, "unchanged, skipped" if skipped else "ran")
    return StageOutcome(stage, skipped)


def summary(experiment: str) -> dict:
    artifacts = Artifacts(experiment)
    metrics = json.loads(artifacts.metrics("evaluate").read_text())
    registry = json.loads(artifacts.registry_record.read_text())
    return {"experiment": experiment, "mle": metrics["mle"], "adversarial": metrics["adversarial"], **registry}


def _markdown(results: dict[str, dict], outcomes: list[StageOutcome], pipeline_run: str) -> str:
    lines = [f"# SeqGAN training (pipeline run `{pipeline_run}`)", "", "| stage | |", "|---|---|"]
    lines += [f"| {o.stage} | {'skipped (unchanged)' if o.skipped else 'ran'} |" for o in outcomes]
    for experiment, r in results.items():
        lines += ["", f"## {experiment}: `{r['model']}` version {r['version']} (alias `challenger`)", "",
                  "| metric | MLE | adversarial |", "|---|---|---|"]
        lines += [f"| {k} | {r['mle'][k]:.4f} | {r['adversarial'][k]:.4f} |" for k in r["adversarial"]]
    return "\n".join(lines)


def _pipeline_run() -> str:
    """Stages of one flow run share one MLflow parent run per experiment, keyed by the flow run."""
    return os.environ.get("SEQGAN_PIPELINE_RUN") or f"prefect-{flow_run.get_id() or 'local'}"


@flow(name="seqgan-train", log_prints=True)
def train_flow(experiment: str = "all") -> dict[str, dict]:
    """Run the DVC stages of one experiment (or all) as tasks; returns key metrics."""
    if experiment != "all" and experiment not in EXPERIMENTS:
        raise ValueError(f"experiment must be 'all' or one of {EXPERIMENTS}, got {experiment!r}")
    pipeline_run = _pipeline_run()
    nodes = load_stage_graph() if experiment == "all" else stages_for(experiment)
    outcomes = [run_stage(node.name, pipeline_run) for node in nodes]
    experiments = EXPERIMENTS if experiment == "all" else (experiment,)
    results = {e: summary(e) for e in experiments}
    create_markdown_artifact(_markdown(results, outcomes, pipeline_run), key="seqgan-training",
                             description="Stages run and metrics of the registered challenger")
    return results


@flow(name="seqgan-compare", log_prints=True)
def comparison_flow() -> str:
    """Train and score every method (comparison/dvc.yaml, after whatever training stages it
    needs) as tasks; returns the results table (markdown), also attached as an artifact."""
    pipeline_run = _pipeline_run()
    outcomes = [run_stage(node.name, pipeline_run) for node in load_stage_graph(pipeline="comparison")]
    table = Path("comparison/results.md").read_text(encoding="utf-8")
    ran = ", ".join(o.stage for o in outcomes if not o.skipped) or "none (all unchanged)"
    create_markdown_artifact(f"{table}\nStages run: {ran}\n", key="seqgan-comparison",
                             description="Every method of the papers' tables, trained and scored the same way")
    return table


@flow(name="seqgan-promote", log_prints=True)
def promotion_flow(experiment: str = "synthetic", version: str | None = None):
    """Put the challenger registered by the last `evaluate` (or `version`) through the gate."""
    from .registry import promote_version

    model = kind_of(experiment).model_name(load_params())
    if version is None:
        version = json.loads(Artifacts(experiment).registry_record.read_text())["version"]
    decision = promote_version(model, str(version), flow_run=str(flow_run.get_id() or "local"))
    create_markdown_artifact(f"# Promotion of `{model}` v{version}\n\n{decision.summary()}", key="seqgan-promotion")
    print(decision.summary())
    return decision


@task(retries=2, retry_delay_seconds=30, task_run_name="refresh-inputs")
def refresh_inputs() -> list[str]:
    """Bring the external inputs up to date: every DVC import (`dvc import-url` /
    `dvc import`, e.g. a corpus kept on a share or in a data registry) is updated to its
    source's current version, so the stages that read it re-run. Inputs kept in git are
    what this clone has checked out. Returns the import files it updated."""
    from dvc.repo import Repo

    logger = get_run_logger()
    with Repo(".") as repo:
        imports = sorted(stage.relpath for stage in repo.index.stages if stage.is_import)
    if not imports:
        logger.info("no DVC imports: the inputs are the files in this clone")
        return []
    result = subprocess.run([executable("dvc"), "update", *imports], capture_output=True, text=True)
    if result.returncode != 0:  # a source that cannot be reached: retried, then the flow fails here
        raise RuntimeError(f"`dvc update {' '.join(imports)}` failed:\n{(result.stdout + result.stderr).strip()[-3000:]}")
    logger.info("updated %s", ", ".join(imports))
    return imports


@flow(name="seqgan-retrain", log_prints=True)
def retrain_flow(experiment: str = "synthetic", profile: str = "small", seed: int = 0):
    """The scheduled job: make params.yaml `profile` with training seed `seed`, refresh the
    inputs, train and evaluate (`train_flow`), and hand the new generator to the gate.

    The data depends on `oracle.seed` and `corpus.split_seed`, not on `seed`, so a retrain
    with another seed is compared with the champion on the same data version."""
    source = apply_profile(profile, seed)
    print(f"params.yaml <- {source} with seed {seed}")
    refreshed = refresh_inputs()
    results = train_flow(experiment)
    return {"refreshed": refreshed, "training": results, "promotion": promotion_flow(experiment)}
