"""A killed adversarial run resumes from its last checkpoint and ends exactly where an
uninterrupted run ends; a checkpoint of other params is ignored, never mixed in."""
from __future__ import annotations

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
    from pipelines.runtime import load_dataset, stage
    from pipelines.stages import adversarial

    with stage("adversarial", "synthetic") as ctx:
        dataset = load_dataset(ctx.paths, ctx.device)
        outputs = adversarial.Outputs(out / "generator.pt", None, out / "curve.csv", out / "curve.png",
                                      out / "metrics.json", Path(".checkpoints/test/adversarial.pt"))
        return adversarial.train(ctx, dataset, method, outputs)


def crash_at(monkeypatch: pytest.MonkeyPatch, batch_to_crash: int) -> None:
    from pipelines.stages import adversarial

    real = adversarial.generator_update

    def crashing(*args, **kwargs):
        update = real(*args, **kwargs)

        def step(batch: int):
            if batch == batch_to_crash:
                raise Crash(f"killed at batch {batch}")
            return update(batch)
        return step

    monkeypatch.setattr(adversarial, "generator_update", crashing)


@pytest.mark.parametrize("method", ["seqgan", "maligan_full"])
def test_killed_run_resumes_to_the_uninterrupted_result(repo: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture, method: str) -> None:
    whole = train(repo / "whole", method)
    checkpoint = repo / ".checkpoints/test/adversarial.pt"
    assert not checkpoint.exists()  # a finished run clears its checkpoint

    with monkeypatch.context() as patch:
        crash_at(patch, 3)  # the tiny profile checkpoints every 2 of its 4 batches
        with pytest.raises(Crash):
            train(repo / "resumed", method)
    assert torch.load(checkpoint, weights_only=False)["step"] == 2
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
