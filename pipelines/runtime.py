"""What every DVC stage shares: where files live, how they are written, how models are
built from params, and how a stage starts and fails.

Outputs are written atomically (temporary file + rename), so a killed stage never leaves
a truncated file where DVC or the next stage expects a good one.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqgan_core import Discriminator, Generator, Oracle, TrainingDiverged
from seqgan_core.corpus import Vocabulary

from .config import Experiment, Params, ParamsError, load_params


class StageError(RuntimeError):
    """A stage cannot run: the message names the cause and the fix."""


@dataclass(frozen=True)
class ExperimentPaths:
    """Where one experiment's stage outputs live (all tracked by DVC)."""

    experiment: str

    @property
    def data(self) -> Path:
        return Path("data") / self.experiment

    @property
    def models(self) -> Path:
        return Path("models") / self.experiment

    @property
    def metrics(self) -> Path:
        return Path("metrics") / self.experiment

    @property
    def plots(self) -> Path:
        return Path("plots") / self.experiment

    @property
    def reports(self) -> Path:
        return Path("reports") / self.experiment

    @property
    def checkpoints(self) -> Path:
        """Resumable training state; outside DVC's outputs so a re-run can resume from it."""
        return Path(".checkpoints") / self.experiment


# ------------------------------------------------------------------------ writing
def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, payload: Any) -> None:
    _atomic_write(path, lambda tmp: tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n"))


def write_text(path: Path, text: str) -> None:
    _atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def save_torch(path: Path, payload: Any) -> None:
    """Same payload, same bytes: given a path, torch.save records the file's (temporary,
    random) name inside the archive; given an open file it records a fixed one."""
    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:
            torch.save(payload, f)

    _atomic_write(path, write)


def save_tokens(path: Path, tokens: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:  # a file object: np.save would append ".npy" to a path
            np.save(f, tokens, allow_pickle=False)

    _atomic_write(path, write)


def read_json(path: Path) -> Any:
    return json.loads(require(path).read_text())


def require(path: Path) -> Path:
    """A stage input that must exist; the error names the stage that makes it."""
    if not path.exists():
        raise StageError(
            f"{path} is missing: it is produced by an earlier stage. Run `dvc repro` "
            "(or `dvc repro <stage>`) to rebuild it; do not delete DVC outputs by hand."
        )
    return path


# ----------------------------------------------------------------------- datasets
@dataclass(frozen=True)
class Dataset:
    """An experiment's token data: what `oracle` or `preprocess` writes, the rest reads."""

    experiment: str
    train: torch.Tensor
    test: torch.Tensor
    vocab_size: int
    seq_len: int
    start_token: int
    oracle: Oracle | None = None
    vocab: Vocabulary | None = None
    tokenizer: str = "char"
    reference_nll: dict[str, float] = field(default_factory=dict)  # oracle data / uniform NLL lines
    fingerprint: str = ""  # content hash of the data files: the "data version" models are compared on

    def decode(self, tokens: torch.Tensor) -> list[str]:
        """Readable text of token rows: characters/words for a corpus, ids for the oracle."""
        rows = tokens.tolist()
        if self.vocab is None:
            return [" ".join(map(str, row)) for row in rows]
        joiner = "" if self.tokenizer == "char" else " "
        return [joiner.join(self.vocab.decode(row)) for row in rows]


def save_dataset(paths: ExperimentPaths, train: np.ndarray, test: np.ndarray, spec: dict[str, Any]) -> None:
    save_tokens(paths.data / "train.npy", train.astype(np.int64))
    save_tokens(paths.data / "test.npy", test.astype(np.int64))
    write_json(paths.data / "dataset.json", {**spec, "num_train": len(train), "num_test": len(test)})


def load_dataset(paths: ExperimentPaths, device: torch.device) -> Dataset:
    spec = read_json(paths.data / "dataset.json")
    train = torch.from_numpy(np.load(require(paths.data / "train.npy")))
    test = torch.from_numpy(np.load(require(paths.data / "test.npy")))
    oracle = vocab = None
    if spec["kind"] == "synthetic":
        oracle = load_oracle(paths.data / "oracle.pt", device)
    else:
        vocab = Vocabulary.load(require(paths.data / "vocab.json"))
    return Dataset(
        paths.experiment, train, test, spec["vocab_size"], spec["seq_len"], spec["start_token"],
        oracle, vocab, spec.get("tokenizer", "char"), spec.get("reference_nll", {}),
        files_fingerprint(sorted(paths.data.iterdir())),
    )


def files_fingerprint(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def load_oracle(path: Path, device: torch.device) -> Oracle:
    state = torch.load(require(path), map_location="cpu", weights_only=True)
    cfg = state["config"]
    oracle = Oracle(0, cfg["vocab_size"], cfg["emb_dim"], cfg["hidden_dim"], cfg["seq_len"], cfg["start_token"])
    oracle.model.load_state_dict(state["state_dict"])
    oracle.model.to(device)
    return oracle


# ------------------------------------------------------------------------- models
def build_generator(params: Params, dataset: Dataset) -> Generator:
    g = params.generator
    return Generator(dataset.vocab_size, g.emb_dim, g.hidden_dim, dataset.seq_len, dataset.start_token, g.init_std)


def build_discriminator(params: Params, dataset: Dataset) -> Discriminator:
    d = params.discriminator
    return Discriminator(dataset.vocab_size, dataset.seq_len, d.emb_dim, d.filter_sizes, d.num_filters, d.dropout, d.l2_reg)


def generator_config(model: Generator) -> dict[str, int | float]:
    return {
        "vocab_size": model.vocab_size, "emb_dim": model.emb_dim, "hidden_dim": model.hidden_dim,
        "seq_len": model.seq_len, "start_token": model.start_token,
    }


def save_model(path: Path, model: torch.nn.Module, config: dict[str, Any]) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_torch(path, {"config": config, "state_dict": state})


def load_generator(path: Path, device: torch.device) -> Generator:
    state = torch.load(require(path), map_location="cpu", weights_only=True)
    model = Generator(**state["config"])
    model.load_state_dict(state["state_dict"])
    return model.to(device)


def load_model_state(model: torch.nn.Module, path: Path) -> torch.nn.Module:
    model.load_state_dict(torch.load(require(path), map_location="cpu", weights_only=True)["state_dict"])
    return model


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
    paths: ExperimentPaths
    pipeline: str = "training"  # which dvc.yaml: "training" (./dvc.yaml) or "comparison"
    tracker: Any = field(default=None)

    def rng(self, *stream: str) -> torch.Generator:
        return seeded_rng(self.params.seed, self.name, *stream)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"stopped by signal {signal.Signals(signum).name}")


@contextmanager
def stage(name: str, experiment: Experiment, *, pipeline: str = "training") -> Iterator[StageContext]:
    """Load and validate params, configure torch, open the stage's tracking run."""
    from . import tracking

    params = load_params()
    if params.threads:
        torch.set_num_threads(params.threads)
    torch.manual_seed(params.seed)  # dropout draws from the global generator
    ctx = StageContext(name, experiment, params, resolve_device(params.device), ExperimentPaths(experiment), pipeline)
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
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the run is closed as KILLED by then
        print(f"stopped: {exc or 'interrupted'}; the next `dvc repro` resumes a resumable stage", file=sys.stderr)
        raise SystemExit(130) from None


def experiment_arg(stage_name: str) -> Experiment:
    """The experiment a foreach stage runs for: `python -m pipelines.stages.<stage> <experiment>`."""
    import argparse

    from .config import EXPERIMENTS

    parser = argparse.ArgumentParser(prog=f"pipelines.stages.{stage_name}")
    parser.add_argument("experiment", choices=EXPERIMENTS)
    return parser.parse_args().experiment
