"""Fanning jobs out to a Prefect work pool and following them to the end.

Each job is one flow run of a deployment (`run_deployment`, not waited on). A job starts
once the jobs it comes after have completed, with parameters built from their results. A
job's result travels as a JSON artifact of its flow run (`result_artifact`, written with
`publish_result`): the server keeps it, so the caller reads it whichever machine ran the job
(a flow run's return value stays on the worker's disk).

What can go wrong, and what happens:
- the flow run fails (its own retries spent): the job has failed, with the run's message;
  the jobs after it fail too, naming it;
- its worker is lost (killed, or the node is gone): the worker stops sending heartbeats.
  A run whose worker has been silent for `lost_after_s` (default: three of its heartbeat
  intervals, at least 15 s), or that Prefect reports CRASHED, is marked CRASHED and the job
  submitted again, up to `resubmits` times; the next free worker takes it;
- the deadline passes: runs still going are cancelled and their jobs failed.
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

WORKER_LABEL = "prefect.worker.name"
_RESULT = re.compile(r"```json\n(.*)\n```", re.S)


def publish_result(result: Any, key: str, description: str) -> None:
    """Inside a flow run: leave `result` (JSON-able) as the run's artifact `key`."""
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(f"```json\n{json.dumps(result, indent=1)}\n```", key=key, description=description)


@dataclass
class Attempt:
    flow_run_id: UUID
    worker: str | None = None
    state: str = "SCHEDULED"
    message: str = ""

    def to_dict(self) -> dict:
        return {"flow_run_id": str(self.flow_run_id), "worker": self.worker, "state": self.state,
                "message": self.message}


@dataclass
class Job:
    key: str
    after: tuple[str, ...] = ()
    status: str = "waiting"  # waiting | running | done | failed
    result: Any = None
    reason: str = ""
    attempts: list[Attempt] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"status": self.status, "reason": self.reason, "attempts": [a.to_dict() for a in self.attempts]}


def _lost_workers(client: Any, pool: str, lost_after_s: float | None) -> set[str]:
    """Workers of `pool` whose last heartbeat is older than `lost_after_s` (default: three
    heartbeat intervals, at least 15 s), or that the server already calls OFFLINE."""
    now, lost = datetime.now(timezone.utc), set()
    for worker in client.read_workers_for_work_pool(pool):
        limit = lost_after_s or max(15.0, 3 * (worker.heartbeat_interval_seconds or 30))
        beat = worker.last_heartbeat_time
        if worker.status.value == "OFFLINE" or beat is None or (now - beat).total_seconds() > limit:
            lost.add(worker.name)
    return lost


def _read_result(client: Any, flow_run_id: UUID, key: str) -> Any:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId

    found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                  flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    if not found or not (match := _RESULT.search(found[-1].data or "")):
        raise LookupError(f"flow run {flow_run_id} completed without its {key!r} artifact")
    return json.loads(match.group(1))


def fan_out(
    jobs: Mapping[str, Job],
    deployment: str,
    parameters: Callable[[Job], dict],
    *,
    result_artifact: str,
    resubmits: int = 1,
    timeout_s: float = 6 * 3600,
    poll_s: float = 2.0,
    lost_after_s: float | None = None,
    on_lost: Callable[[Job, Attempt], None] | None = None,
    log: Callable[[str], None] = print,
) -> Mapping[str, Job]:
    """Run every job as a flow run of `deployment`; returns the jobs, each done or failed."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.states import Cancelling, Crashed

    def submit(job: Job) -> None:
        run = run_deployment(deployment, parameters=parameters(job), timeout=0, flow_run_name=job.key.split(":")[-1])
        job.status = "running"
        job.attempts.append(Attempt(run.id))
        log(f"submitted {job.key} (attempt {len(job.attempts)}, flow run {run.id})")

    def fail(job: Job, reason: str) -> None:
        job.status, job.reason = "failed", reason
        log(f"FAILED {job.key}: {reason}")

    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            for job in jobs.values():
                if job.status != "waiting":
                    continue
                if failed := [k for k in job.after if jobs[k].status == "failed"]:
                    fail(job, f"not run: {', '.join(failed)} failed")
                elif all(jobs[k].status == "done" for k in job.after):
                    submit(job)
            running = [job for job in jobs.values() if job.status == "running"]
            if not running and not any(job.status == "waiting" for job in jobs.values()):
                return jobs
            if time.monotonic() > deadline:
                for job in jobs.values():
                    if job.status == "running":
                        client.set_flow_run_state(job.attempts[-1].flow_run_id, Cancelling(), force=True)
                    if job.status in ("running", "waiting"):
                        fail(job, f"still {job.status} when the {timeout_s:.0f} s allowed ran out")
                return jobs
            pools = {client.read_flow_run(job.attempts[-1].flow_run_id).work_pool_name for job in running}
            lost = set().union(*(_lost_workers(client, pool, lost_after_s) for pool in pools if pool))
            for job in running:
                attempt = job.attempts[-1]
                run = client.read_flow_run(attempt.flow_run_id)
                attempt.worker = run.labels.get(WORKER_LABEL) or attempt.worker
                attempt.state, attempt.message = run.state.type.value, run.state.message or ""
                if run.state.is_completed():
                    try:
                        job.status, job.result = "done", _read_result(client, run.id, result_artifact)
                        log(f"done {job.key} on {attempt.worker}")
                    except LookupError as exc:  # e.g. a deployment whose flow publishes no result
                        fail(job, str(exc))
                elif attempt.state in ("FAILED", "CANCELLED"):
                    fail(job, f"flow run {run.id} on {attempt.worker} {attempt.state}: {attempt.message}")
                elif attempt.state == "CRASHED" or (attempt.state in ("RUNNING", "PENDING") and attempt.worker in lost):
                    if attempt.state != "CRASHED":
                        attempt.state = "CRASHED"
                        attempt.message = f"worker {attempt.worker} lost: no heartbeat"
                        client.set_flow_run_state(run.id, Crashed(message=attempt.message), force=True)
                    if on_lost is not None:
                        on_lost(job, attempt)
                    if len(job.attempts) > resubmits:
                        fail(job, f"{len(job.attempts)} attempts, the last {attempt.message}")
                    else:
                        log(f"{job.key}: {attempt.message}; submitting it again")
                        submit(job)
            time.sleep(poll_s)
