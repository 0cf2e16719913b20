"""A killed adversarial run resumes from its last checkpoint and ends exactly where an
uninterrupted run ends; a checkpoint of other params is ignored, never mixed in; a damaged
one is moved aside and the run starts afresh; a diverged run says what it leaves to resume."""
from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import pytest
import torch

from conftest import stage_env

pytestmark = pytest.mark.slow


class Crash(RuntimeError):
    """Stands in for the process dying mid-run (SIGKILL leaves the same files behind)."""


@pytest.fixture()
def repo(pipeline_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(pipeline_repo, root, symlinks=True)
    monkeypatch.chdir(root)
    for key, value in stage_env(root).items():
        monkeypatch.setenv(key, value)
    return root


def train(out: Path, method: str = "seqgan"):
    from pipelines.datasets import load_dataset
    from pipelines.runtime import stage
    from pipelines.stages import adversarial

    with stage("adversarial", "synthetic") as ctx:
        dataset = load_dataset(ctx.artifacts, ctx.device)
        outputs = adversarial.Outputs(out / "generator.pt", None, out / "curve.csv", out / "curve.png",
                                      out / "metrics.json", Path(".checkpoints/test/adversarial.pt"))
        pretrained = adversarial.Pretrained(ctx.artifacts.generator_mle, ctx.artifacts.discriminator_pre)
        return adversarial.train(ctx, dataset, method, pretrained, outputs)


def crash_at(monkeypatch: pytest.MonkeyPatch, batch_to_crash: int, method: str = "seqgan") -> None:
    """Make `method`'s generator step raise Crash at adversarial batch `batch_to_crash`."""
    from seqgan_core.methods import METHODS, AdversarialMethod

    method_class = METHODS[method]

    def crashing(method: AdversarialMethod, batch: int, real=method_class.generator_step):
        if batch == batch_to_crash:
            raise Crash(f"killed at batch {batch}")
        return real(method, batch)

    monkeypatch.setattr(method_class, "generator_step", crashing)


@pytest.mark.parametrize("method", ["seqgan", "maligan_full"])
def test_killed_run_resumes_to_the_uninterrupted_result(repo: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture, method: str) -> None:
    whole = train(repo / "whole", method)
    checkpoint = repo / ".checkpoints/test/adversarial.pt"
    assert not checkpoint.exists()  # a finished run clears its checkpoint

    with monkeypatch.context() as patch:
        crash_at(patch, 3, method)  # the tiny profile checkpoints every 2 of its 4 batches
        with pytest.raises(Crash):
            train(repo / "resumed", method)
    assert torch.load(checkpoint, weights_only=True)["step"] == 2
    assert not (repo / "resumed/generator.pt").exists()  # nothing half-written where an output goes

    resumed = train(repo / "resumed", method)
    assert "resuming from .checkpoints/test/adversarial.pt (step 2)" in capsys.readouterr().err
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert (repo / "whole/curve.csv").read_text() == (repo / "resumed/curve.csv").read_text()


def test_checkpoint_of_other_params_is_ignored(repo: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture) -> None:
    with monkeypatch.context() as patch:
        crash_at(patch, 3)
        with pytest.raises(Crash):
            train(repo / "seqgan", "seqgan")
    train(repo / "mle", "mle")  # another method: its own fingerprint
    assert "ignoring .checkpoints/test/adversarial.pt: it belongs to other params or inputs" in capsys.readouterr().err


# ------------------------------------------------------------- the Checkpointer itself


def tiny_run() -> tuple[dict, dict]:
    """What a stage hands the Checkpointer: a model and its optimiser, one named random stream."""
    from seqgan_core import Generator
    from seqgan_core.train import adam

    torch.manual_seed(0)
    model = Generator(12, 4, 4, 5)
    optimizer = adam(model.parameters(), 0.01)
    model.token_log_probs(model.sample(3)).sum().backward()
    optimizer.step()
    return {"model": model, "optimizer": optimizer}, {"rng": torch.Generator().manual_seed(1)}


def test_checkpoint_holds_every_random_state_and_loads_weights_only(tmp_path: Path) -> None:
    from pipelines.resume import Checkpointer, cuda_rng_states

    objects, rngs = tiny_run()
    path = tmp_path / "run.pt"
    Checkpointer(path, "k").save(3, [{"epoch": 3, "train_nll": 2.5}], objects, rngs)
    state = torch.load(path, weights_only=True)  # model and optimiser state, RNG states, history, key, step
    assert state["key"] == "k" and state["step"] == 3 and state["history"] == [{"epoch": 3, "train_nll": 2.5}]
    assert torch.equal(state["torch_rng"], torch.get_rng_state())
    assert len(state["cuda_rng"]) == len(cuda_rng_states())  # before: no CUDA states at all
    assert all(s.dtype == torch.uint8 for s in [state["torch_rng"], state["rng"], *state["cuda_rng"]])

    expected = rngs["rng"].get_state()
    rngs["rng"].manual_seed(99)
    fresh, _ = tiny_run()
    assert Checkpointer(path, "k").restore(fresh, rngs) == (3, [{"epoch": 3, "train_nll": 2.5}])
    assert torch.equal(rngs["rng"].get_state(), expected)


def test_checkpoint_without_cuda_states_resumes(tmp_path: Path) -> None:
    from pipelines.resume import Checkpointer

    objects, rngs = tiny_run()
    path = tmp_path / "run.pt"
    Checkpointer(path, "k").save(2, [], objects, rngs)
    state = torch.load(path, weights_only=True)
    del state["cuda_rng"]  # a checkpoint written before CUDA states were saved
    torch.save(state, path)
    assert Checkpointer(path, "k").restore(objects, rngs) == (2, [])


def test_checkpoint_of_another_machines_cuda_devices_is_ignored(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from pipelines.resume import Checkpointer

    objects, rngs = tiny_run()
    path = tmp_path / "run.pt"
    Checkpointer(path, "k").save(2, [], objects, rngs)
    state = torch.load(path, weights_only=True)
    state["cuda_rng"] = [torch.zeros(16, dtype=torch.uint8)] * (torch.cuda.device_count() + 1)
    torch.save(state, path)
    assert Checkpointer(path, "k").restore(objects, rngs) is None
    assert (f"ignoring {path}: it was saved with {torch.cuda.device_count() + 1} CUDA device(s) and this machine "
            f"has {torch.cuda.device_count()}") in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["truncate", "text", "empty"])
def test_unreadable_checkpoint_is_moved_aside(tmp_path: Path, capsys: pytest.CaptureFixture, damage: str) -> None:
    from pipelines.resume import Checkpointer

    objects, rngs = tiny_run()
    path = tmp_path / "run.pt"
    Checkpointer(path, "k").save(2, [], objects, rngs)
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "text": b"not a checkpoint\n", "empty": b""}[damage])
    (tmp_path / "run.pt.corrupt").write_text("an older damaged checkpoint")
    damaged = path.read_bytes()

    assert Checkpointer(path, "k").restore(objects, rngs) is None  # before: OSError, EOFError, UnpicklingError
    err = capsys.readouterr().err
    assert f"note: {path} cannot be read (" in err
    assert f"moved it to {path}.corrupt, and this stage starts afresh" in err
    assert not path.exists() and (tmp_path / "run.pt.corrupt").read_bytes() == damaged


def missing_optimizer(state: dict) -> None:
    del state["optimizer"]


def other_output_layer(state: dict) -> None:
    state["model"]["W_out"] = torch.zeros(3, 3)


@pytest.mark.parametrize("misfit", [missing_optimizer, other_output_layer])
def test_checkpoint_that_does_not_fit_is_moved_aside_leaving_the_run_fresh(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                                          misfit) -> None:
    from pipelines.resume import Checkpointer

    objects, rngs = tiny_run()
    path = tmp_path / "run.pt"
    Checkpointer(path, "k").save(2, [], objects, rngs)
    state = torch.load(path, weights_only=True)
    state["model"] = {name: weights + 1 for name, weights in state["model"].items()}  # unlike a fresh run's
    misfit(state)
    torch.save(state, path)

    fresh, rngs = tiny_run()
    weights, rng_state = copy.deepcopy(fresh["model"].state_dict()), rngs["rng"].get_state()
    # before: KeyError / size mismatch, on this and every later run (the file stayed)
    assert Checkpointer(path, "k").restore(fresh, rngs) is None
    assert f"note: {path} does not fit this run (" in capsys.readouterr().err
    assert not path.exists() and (tmp_path / "run.pt.corrupt").exists()
    for name, tensor in fresh["model"].state_dict().items():  # nothing half restored
        assert torch.equal(tensor, weights[name]), name
    assert torch.equal(rngs["rng"].get_state(), rng_state)


def test_checkpoint_that_runs_code_is_never_unpickled(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from pipelines.resume import Checkpointer

    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):
            return os.mkdir, (str(marker),)

    path = tmp_path / "run.pt"
    torch.save({"key": "k", "step": 1, "history": [], "payload": Payload()}, path)
    objects, rngs = tiny_run()
    assert Checkpointer(path, "k").restore(objects, rngs) is None
    assert not marker.exists()  # before (weights_only=False): loading it made the directory
    assert "UnpicklingError" in capsys.readouterr().err and (tmp_path / "run.pt.corrupt").exists()


# --------------------------------------------------------------------- in the stage


def test_damaged_checkpoint_restarts_the_run_from_scratch(repo: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture) -> None:
    train(repo / "whole", "mle")
    checkpoint = repo / ".checkpoints/test/adversarial.pt"
    with monkeypatch.context() as patch:
        crash_at(patch, 3, "mle")
        with pytest.raises(Crash):
            train(repo / "resumed", "mle")
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])  # e.g. a disk that filled up

    train(repo / "resumed", "mle")  # before: OSError: [Errno 22] Invalid argument, on this and every later run
    assert "starts afresh" in capsys.readouterr().err
    assert (repo / ".checkpoints/test/adversarial.pt.corrupt").exists() and not checkpoint.exists()
    assert (repo / "whole/curve.csv").read_text() == (repo / "resumed/curve.csv").read_text()


def diverge_at(monkeypatch: pytest.MonkeyPatch, batch_to_diverge: int) -> None:
    """Make the generator's loss NaN from adversarial batch `batch_to_diverge` on."""
    from seqgan_core.methods import METHODS, AdversarialMethod

    method_class = METHODS["mle"]

    def diverging(method: AdversarialMethod, batch: int, real=method_class.generator_step):
        if batch == batch_to_diverge:
            with torch.no_grad():
                method.generator.b_out.fill_(float("nan"))
        return real(method, batch)

    monkeypatch.setattr(method_class, "generator_step", diverging)


@pytest.mark.parametrize("batch, kept", [
    (1, "No checkpoint was saved yet; the next run starts from the beginning."),
    (3, "Resume point .checkpoints/test/adversarial.pt (after step 2) is kept: a re-run with the same params and "
        "inputs resumes from it, one with changed params starts afresh."),
])
def test_divergence_says_truthfully_what_is_kept(repo: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture, batch: int, kept: str) -> None:
    from pipelines.runtime import run_main

    diverge_at(monkeypatch, batch)  # the tiny profile checkpoints after batches 2 and 4
    with pytest.raises(SystemExit):
        run_main(lambda: train(repo / "out", "mle"))
    err = capsys.readouterr().err
    assert "error: MLE loss became nan: training diverged. Lower the learning rate" in err
    assert err.rstrip().endswith(kept)  # before: "the last good checkpoint is kept", checkpoint or not
    assert (repo / ".checkpoints/test/adversarial.pt").exists() == (batch == 3)
