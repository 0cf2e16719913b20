"""An exploding generator is stopped in training, before anything is checkpointed, saved or
registered: `adversarial.lr: 1.0e+8` on the tiny profile keeps every loss finite while the
weights reach ~1e8 (and every sample becomes one repeated token loop)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from conftest import dvc

pytestmark = pytest.mark.slow


def test_exploding_generator_stops_the_adversarial_stage(pipeline_repo: Path, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(pipeline_repo, root, symlinks=True)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["adversarial"]["lr"] = 1.0e8
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    before = (root / "models/synthetic/generator_adv.pt").read_bytes()
    result = dvc(root, "repro", "adversarial@synthetic", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0  # before: the stage passed, and the gate later promoted the model
    assert "error: generator weight" in output and "above the bound 1000: training diverged" in output
    assert "Lower adversarial.lr, or raise adversarial.max_abs_weight if weights this large are intended." in output
    assert "No checkpoint was saved yet; the next run starts from the beginning." in output
    assert "Traceback" not in output
    # the diverged generator is never saved: the previous run's model stays (outputs persist)
    assert (root / "models/synthetic/generator_adv.pt").read_bytes() == before
    assert not (root / ".checkpoints/synthetic/adversarial.pt").exists()
