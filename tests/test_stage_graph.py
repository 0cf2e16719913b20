"""The stage graph as the flows and the CLI see it, read from this repository's dvc.yaml
files through DVC: per pipeline file, with everything upstream, in dependency order."""
from __future__ import annotations

from conftest import REPO_ROOT

from pipelines.config import METHODS
from pipelines.stage_graph import load_stage_graph, stages_for

TRAINING = ["pretrain_generator", "pretrain_discriminator", "adversarial", "evaluate"]


def assert_topological(nodes) -> None:
    seen: set[str] = set()
    for node in nodes:
        assert set(node.upstream) <= seen, f"{node.name} comes before {set(node.upstream) - seen}"
        seen.add(node.name)


def test_training_graph_is_dvc_yaml_alone() -> None:
    nodes = load_stage_graph(REPO_ROOT)
    assert {n.name for n in nodes} == {"oracle", "preprocess"} | {f"{s}@{e}" for s in TRAINING for e in ("synthetic", "real")}
    assert_topological(nodes)
    assert {n.name: n.upstream for n in nodes}["adversarial@real"] == ("preprocess", "pretrain_discriminator@real", "pretrain_generator@real")


def test_comparison_graph_brings_the_pretraining_it_reads() -> None:
    nodes = load_stage_graph(REPO_ROOT, pipeline="comparison")
    names = {n.name for n in nodes}
    compare = {f"comparison/dvc.yaml:compare@{e}-{m}" for e in ("synthetic", "real") for m in METHODS}
    pretraining = {"oracle", "preprocess"} | {f"{s}@{e}" for s in TRAINING[:2] for e in ("synthetic", "real")}
    assert names == compare | pretraining | {"comparison/dvc.yaml:report"}
    assert_topological(nodes)
    assert nodes[-1].name == "comparison/dvc.yaml:report"
    assert all(n.experiment is None for n in nodes if n.pipeline == "comparison")


def test_one_experiments_stages() -> None:
    assert [n.name for n in stages_for("real", REPO_ROOT)] == [
        "preprocess", "pretrain_generator@real", "pretrain_discriminator@real", "adversarial@real", "evaluate@real"]


# Runs a stage module the way DVC would with a Python that lacks the project's packages:
# the site-packages directories are dropped from the search path before the import.
OUTSIDE_VENV = """
import runpy, sys
sys.path = [p for p in sys.path if "site-packages" not in p]
runpy.run_module("pipelines.stages.oracle", run_name="__main__")
"""


def test_a_stage_outside_the_virtualenv_says_how_to_fix_it() -> None:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", OUTSIDE_VENV], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 1
    assert "has no torch, pydantic, yaml: it is not the project's virtualenv" in result.stderr
    assert "source .venv/bin/activate" in result.stderr
    assert "Traceback" not in result.stderr
