"""Shared fixtures: a copy of the project in a temporary git repository, and the
environment a stage subprocess needs (the venv first on PATH, telemetry off)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


def project_files() -> list[str]:
    """Files of the project as a fresh clone has them (tracked + new, not ignored)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    )
    return [f for f in out.stdout.splitlines() if (REPO_ROOT / f).is_file()]


def stage_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.update(
        MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}",
        MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1", DVC_NO_ANALYTICS="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false", PYTHONPATH=str(root),
    )
    env.pop("SEQGAN_PIPELINE_RUN", None)
    return env


def seqgan_command() -> list[str]:
    """The command line of the `seqgan` entry point in this venv (the module where it is not installed)."""
    exe = Path(sys.executable).parent / "seqgan"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "pipelines.cli"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for a server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_project(dest: Path, *, corpus_lines: int = 800) -> Path:
    """A git repository with the project, the tiny profile as params.yaml and a small corpus."""
    for name in project_files():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, target)
    corpus = (REPO_ROOT / "data/corpora/quatrains5.txt").read_text(encoding="utf-8").splitlines()[:corpus_lines]
    (dest / "data/corpora/quatrains5.txt").write_text("\n".join(corpus) + "\n", encoding="utf-8")
    shutil.copyfile(dest / "profiles/tiny.yaml", dest / "params.yaml")
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "fixture"], cwd=dest, check=True)
    return dest


def dvc(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), *args], cwd=root, env=stage_env(root),
        capture_output=True, text=True, timeout=900,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    """One intra-op torch thread for a module of small-op tests: on a shared 2-core machine
    a second OpenMP thread mostly spin-waits (several times slower under load)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def pipeline_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny pipeline, reproduced once for the whole session."""
    root = copy_project(tmp_path_factory.mktemp("pipeline") / "repo")
    dvc(root, "repro")
    return root


@pytest.fixture(scope="session")
def sweep_repo(pipeline_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A copy of the reproduced tiny pipeline (so other tests see it unchanged) after `seqgan
    sweep` (its stdout second): 2 seeds x {mle, seqgan} x both experiments. Tests read it and
    never change it: test_comparison checks it, test_cluster compares its own cells with it."""
    root = tmp_path_factory.mktemp("comparison") / "repo"
    shutil.copytree(pipeline_repo, root, symlinks=True)
    result = subprocess.run([str(Path(sys.executable).parent / "seqgan"), "sweep"], cwd=root, env=stage_env(root),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root, result.stdout


@pytest.fixture(scope="session")
def pretrained_tiny(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``kind -> folder`` holding the tiny synthetic experiment's data and its models
    pretrained for that generator kind (test_method_stages.pretrain, in-process), built on
    first use and shared by every module of the session."""
    from test_method_stages import pretrain, tiny_params

    roots: dict[str, Path] = {}

    def folder(kind: str) -> Path:
        if kind not in roots:
            import torch

            root, threads = tmp_path_factory.mktemp(f"pretrained-{kind}"), torch.get_num_threads()
            torch.set_num_threads(1)  # as `single_thread`, which the modules using this take
            try:
                with pytest.MonkeyPatch.context() as monkeypatch:
                    pretrain(root, tiny_params(kind=kind), monkeypatch)
            finally:
                torch.set_num_threads(threads)
            roots[kind] = root
        return roots[kind]

    return folder


def working_copy(source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of ``source`` under ``tmp_path``, as the working directory."""
    root = tmp_path / "repo"
    shutil.copytree(source, root)
    monkeypatch.chdir(root)
    return root
