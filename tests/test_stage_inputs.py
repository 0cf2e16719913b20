"""A stage input that is there but cannot be used (damaged, not what its stage wrote, NaN
weights) stops the stage with one line naming the file and the DVC command that writes it
again, before the stage overwrites anything: `dvc repro -s <stage>` and a direct run do not
re-run the stage that wrote it, as plain `dvc repro` would."""
from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from conftest import stage_env

pytestmark = pytest.mark.slow


@pytest.fixture()
def repo(pipeline_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(pipeline_repo, root, symlinks=True)
    monkeypatch.chdir(root)
    return root


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:3000])


def nan_embedding(path: Path) -> None:
    """NaN in the token embedding (the first weights of a generator and a discriminator)."""
    saved = torch.load(path, weights_only=True)
    weights = saved["state_dict"]
    name = next(k for k in weights if k.startswith("embedding"))
    weights[name] = torch.full_like(weights[name], float("nan"))
    torch.save(saved, path)


def load_synthetic() -> None:
    from pipelines.contract import Artifacts
    from pipelines.datasets import load_dataset

    load_dataset(Artifacts("synthetic"), torch.device("cpu"))


def load_real() -> None:
    from pipelines.contract import Artifacts
    from pipelines.datasets import load_dataset

    load_dataset(Artifacts("real"), torch.device("cpu"))


def load_discriminator() -> None:
    from pipelines.models import load_saved

    load_saved(Path("models/synthetic/discriminator_pre.pt"))


def read_pretrain_curve() -> None:
    from pipelines.plots import read_csv

    read_csv(Path("plots/synthetic/pretrain_generator.csv"))


def scored_pretrain_curve() -> None:
    from pipelines.stages.evaluate import scored_rows

    scored_rows(Path("plots/synthetic/pretrain_generator.csv"))


# (the damaged file, the damage, the read that meets it, what writes it again)
DAMAGES: dict[str, tuple[str, Callable[[Path], None], Callable[[], None], str]] = {
    "truncated oracle": ("data/synthetic/oracle.pt", truncate, load_synthetic, "dvc repro -f oracle"),
    "text as tokens": ("data/synthetic/train.npy", lambda p: p.write_text("garbage\n"), load_synthetic,
                       "dvc repro -f oracle"),
    "broken dataset spec": ("data/synthetic/dataset.json", lambda p: p.write_text("{garbage\n"), load_synthetic,
                            "dvc repro -f oracle"),
    "spec without its fields": ("data/synthetic/dataset.json", lambda p: p.write_text("{}\n"), load_synthetic,
                                "dvc repro -f oracle"),
    "broken vocabulary": ("data/real/vocab.json", lambda p: p.write_text("{garbage\n"), load_real,
                          "dvc repro -f preprocess"),
    "truncated discriminator": ("models/synthetic/discriminator_pre.pt", truncate, load_discriminator,
                                "dvc repro -f pretrain_discriminator@synthetic"),
    "NaN discriminator": ("models/synthetic/discriminator_pre.pt", nan_embedding, load_discriminator,
                          "dvc repro -f pretrain_discriminator@synthetic"),
    "text in a curve": ("plots/synthetic/pretrain_generator.csv", lambda p: p.write_text(p.read_text() + "1,abc\n"),
                        read_pretrain_curve, "dvc repro -f pretrain_generator@synthetic"),
    "curve never scored": ("plots/synthetic/pretrain_generator.csv", lambda p: p.write_text("epoch,train_nll\n1,2.5\n"),
                           scored_pretrain_curve, "dvc repro -f pretrain_generator@synthetic"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_unusable_input_names_the_file_and_the_stage_that_writes_it(repo: Path, damage: str) -> None:
    from pipelines.files import StageError

    name, spoil, read, fix = DAMAGES[damage]
    spoil(repo / name)
    with pytest.raises(StageError) as raised:  # before: RuntimeError, ValueError, JSONDecodeError, KeyError, IndexError
        read()
    message = str(raised.value)
    assert message.startswith(f"{name} ") and f"`{fix}`" in message and "\n" not in message
    assert "allow_pickle" not in message  # numpy's advice for a text file: unpickle it


def run_stage(root: Path, name: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"pipelines.stages.{name}", "synthetic"], cwd=root,
                          env=stage_env(root), capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("spoil, problem", [(truncate, "cannot be read (RuntimeError: PytorchStreamReader"),
                                            (nan_embedding, "holds NaN/inf weights (embedding)")])
def test_stage_refuses_an_unusable_generator_and_keeps_its_outputs(repo: Path, spoil, problem: str) -> None:
    """Before: a traceback for the truncated file; the NaN one trained D on its samples, overwrote
    discriminator_pre.pt and exited 0 (adversarial then blamed the learning rate)."""
    discriminator = repo / "models/synthetic/discriminator_pre.pt"
    before = discriminator.read_bytes()
    spoil(repo / "models/synthetic/generator_mle.pt")

    result = run_stage(repo, "pretrain_discriminator")
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert f"error: models/synthetic/generator_mle.pt {problem}" in result.stderr
    assert "rebuild it with `dvc repro -f pretrain_generator@synthetic`" in result.stderr
    assert discriminator.read_bytes() == before


def test_failed_registration_leaves_evaluates_previous_outputs(repo: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture) -> None:
    """MLflow refusing the registration (a name it does not accept, a server gone) is one line,
    and the outputs DVC does not cache are those of the last finished run, as dvc.lock says."""
    from mlflow.exceptions import MlflowException

    import pipelines.registry
    from pipelines.contract import Artifacts
    from pipelines.runtime import run_main
    from pipelines.stages import evaluate

    def refuse(**registration: object) -> str:
        raise MlflowException("Invalid model name 'bad/name:x'. Names cannot contain '/' or ':'.")

    for key, value in stage_env(repo).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(pipelines.registry, "register_generator", refuse)
    monkeypatch.setattr(sys, "argv", ["evaluate", "synthetic"])
    outputs = {path: path.read_bytes() for path in Artifacts("synthetic").outputs("evaluate")}

    with pytest.raises(SystemExit) as stopped:  # before: the MlflowException's traceback
        run_main(evaluate.main)
    assert stopped.value.code == 1
    assert "error: MLflow refused the stage's call (MlflowException: Invalid model name" in capsys.readouterr().err
    for path, before in outputs.items():  # before: metrics, frontier, samples and plot rewritten
        assert path.read_bytes() == before, path
