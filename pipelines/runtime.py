"""What every DVC stage shares: params, device, named random streams, its tracking run, and
how it starts and fails. Where its files live is `pipelines.contract`; how they are
written, `pipelines.files`; data and models, `pipelines.datasets` and `pipelines.models`.
"""
from __future__ import annotations

import hashlib
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from seqgan_core import TrainingDiverged

from .config import Experiment, Params, ParamsError, load_params
from .contract import Artifacts, ExperimentKind, kind_of
from .files import StageError, summary


# ------------------------------------------------------------------ stage context
def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise StageError(f"device = {spec!r} but CUDA is not available here; set `device: auto` or `cpu` in params.yaml")
    return torch.device(spec)


def seeded_rng(seed: int, *stream: str) -> torch.Generator:
    """A generator for one named random stream: adding a stream never shifts another's draws.

    Always a CPU generator, whatever device the models run on: every seeded draw is made by
    the CPU and moved to the device (`seqgan_core.randomness`), so the same seeds give the
    same draws on any device, and a CUDA generator never meets a CPU draw. Dropout is the
    exception: it draws from torch's global generator of its device, seeded by
    `torch.manual_seed` in `stage`.
    """
    # A hash of the whole name: the stream names of one stage share a long common prefix.
    digest = hashlib.sha256(repr((seed, *stream)).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") % (2**63))


@dataclass
class StageContext:
    name: str
    experiment: str
    params: Params
    device: torch.device
    pipeline: str = "training"  # which dvc.yaml: "training" (./dvc.yaml) or "comparison"
    dvc_stage: str | None = None  # None: `name@experiment`, or `name` for a data stage
    tracker: Any = field(default=None)

    @property
    def kind(self) -> ExperimentKind:
        return kind_of(self.experiment)

    @property
    def artifacts(self) -> Artifacts:
        return self.kind.artifacts()

    def rng(self, *stream: str) -> torch.Generator:
        return seeded_rng(self.params.seed, self.name, *stream)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"stopped by signal {signal.Signals(signum).name}")


@contextmanager
def stage(name: str, experiment: Experiment, *, pipeline: str = "training", seed: int | None = None,
          dvc_stage: str | None = None) -> Iterator[StageContext]:
    """Load and validate params, configure torch, open the stage's tracking run. ``seed``
    replaces params' training seed (a comparison sweep's cell); ``dvc_stage`` is the DVC
    stage's address when it is not ``name@experiment`` (or ``name`` for a data stage)."""
    from . import tracking

    params = load_params()
    if seed is not None:
        params = params.model_copy(update={"seed": seed})
    if params.threads:
        torch.set_num_threads(params.threads)
    torch.manual_seed(params.seed)  # dropout draws from the global generator
    ctx = StageContext(name, experiment, params, resolve_device(params.device), pipeline, dvc_stage)
    # SIGTERM (a scheduler's stop, `kill`) ends the stage as Ctrl-C does: its MLflow run is
    # marked KILLED and no half-written output is left (writes are atomic).
    signal.signal(signal.SIGTERM, _interrupt)
    with tracking.stage_run(ctx) as tracker:
        ctx.tracker = tracker
        yield ctx


def run_main(body: Callable[[], None]) -> None:
    """Run a stage body; known failures become one clear line on stderr and exit code 1."""
    from .validation import DataValidationError

    try:
        body()
    except (ParamsError, StageError, DataValidationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except TrainingDiverged as exc:
        from .resume import what_is_kept  # only the stage's Checkpointer knows what is on disk

        print(f"error: {exc} {what_is_kept()}", file=sys.stderr)
        raise SystemExit(1) from None
    except Exception as exc:
        if not is_mlflow_error(exc):
            raise
        print(f"error: MLflow refused the stage's call ({summary(exc)}); check params.yaml's `tracking` "
              "section and MLFLOW_TRACKING_URI, then re-run the stage", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the run is closed as KILLED by then
        print(f"stopped: {str(exc) or 'interrupted'}; the next `dvc repro` resumes a resumable stage", file=sys.stderr)
        raise SystemExit(130) from None


def is_mlflow_error(exc: BaseException) -> bool:
    """An MlflowException (a tracking server or registry refusing a call), told without
    importing mlflow (slow to import): a stage that never imported it cannot raise one."""
    exceptions = sys.modules.get("mlflow.exceptions")
    return exceptions is not None and isinstance(exc, exceptions.MlflowException)


def experiment_arg(stage_name: str) -> Experiment:
    """The experiment a foreach stage runs for: `python -m pipelines.stages.<stage> <experiment>`."""
    import argparse

    from .config import EXPERIMENTS

    parser = argparse.ArgumentParser(prog=f"pipelines.stages.{stage_name}")
    parser.add_argument("experiment", choices=EXPERIMENTS)
    return parser.parse_args().experiment


def sweep_cell_args(stage_name: str, *extra: str) -> "argparse.Namespace":
    """`<experiment> [<extra>...] <seed>`: the command line of a comparison sweep's stage."""
    import argparse

    from .config import EXPERIMENTS

    parser = argparse.ArgumentParser(prog=f"pipelines.stages.{stage_name}")
    parser.add_argument("experiment", choices=EXPERIMENTS)
    for name in extra:
        parser.add_argument(name)
    parser.add_argument("seed", type=int)
    return parser.parse_args()
