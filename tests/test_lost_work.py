"""A stage that stops on a bad param or a bad input loses nothing already produced: its
earlier outputs (uncached metrics and plots too) stay byte-identical and still match
dvc.lock, and the message names the cause. DVC would delete them before running the stage
without `persist: true` (dvc.yaml)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from conftest import dvc

pytestmark = pytest.mark.slow


def snapshot(root: Path, *folders: str) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for f in folders for p in sorted((root / f).rglob("*")) if p.is_file()}


@pytest.fixture()
def repo(pipeline_repo: Path, tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(pipeline_repo, root, symlinks=True)
    return root


def set_param(root: Path, section: str, key: str, value) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params[section][key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_a_bad_param_keeps_the_stages_earlier_outputs(repo: Path) -> None:
    kept = ("models/synthetic", "metrics/synthetic", "plots/synthetic", "reports/synthetic")
    before = snapshot(repo, *kept)
    set_param(repo, "adversarial", "batches", -3)
    result = dvc(repo, "repro", "adversarial@synthetic", check=False)
    assert result.returncode != 0
    assert "adversarial.batches: value -3 is not allowed" in result.stdout + result.stderr
    assert snapshot(repo, *kept) == before


def test_a_bad_corpus_keeps_the_real_data(repo: Path) -> None:
    kept = ("data/real", "metrics/real")
    before = snapshot(repo, *kept)
    (repo / "data/corpora/quatrains5.txt").write_bytes(b"\xff\xfe not utf-8\n")
    result = dvc(repo, "repro", "preprocess", check=False)
    assert result.returncode != 0 and "is not UTF-8 text" in result.stdout + result.stderr
    assert snapshot(repo, *kept) == before
    status = dvc(repo, "status", "preprocess", check=False).stdout
    assert "changed deps" in status and "changed outs" not in status, status  # the outputs still match dvc.lock
