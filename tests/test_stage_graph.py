"""The stage graph as the flows and the CLI see it, read from this repository's dvc.yaml
files through DVC: per pipeline file, with everything upstream, in dependency order."""
from __future__ import annotations

from pathlib import Path

from conftest import REPO_ROOT, copy_project

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


def test_comparison_graph_is_the_sweep_over_its_own_seeds() -> None:
    """Each seed pretrains its own chain; the sweep reads only the data stages of dvc.yaml."""
    from pipelines.config import load_params

    c = load_params(REPO_ROOT / "params.yaml").comparison
    nodes = load_stage_graph(REPO_ROOT, pipeline="comparison")
    cells = [(e, s) for e in c.experiments for s in c.seeds]
    sweep = ({f"comparison/dvc.yaml:pretrain@{e}-{s}" for e, s in cells}
             | {f"comparison/dvc.yaml:train@{e}-{m}-{s}" for e, s in cells for m in c.methods}
             | {f"comparison/dvc.yaml:{stage}@{e}" for stage in ("calibrate", "frontier") for e in c.experiments}
             | {"comparison/dvc.yaml:report"})
    assert {n.name for n in nodes} == sweep | {"oracle", "preprocess"}
    assert_topological(nodes)
    upstream = {n.name: n.upstream for n in nodes}
    assert upstream["comparison/dvc.yaml:train@real-seqgan-1"] == ("comparison/dvc.yaml:pretrain@real-1", "preprocess")
    assert all(n.experiment is None for n in nodes if n.pipeline == "comparison")


def test_every_method_and_every_seed_pretraining_have_outputs_of_their_own(tmp_path: Path) -> None:
    """With every method in the sweep, DVC builds the graph: no cell writes where another
    stage does (the method `pretrained` once wrote into its seed's pretrained models)."""
    from pipelines.contract import SweepCell
    from pipelines.sweep import parse_methods, widen
    from seqgan_core.methods import METHODS

    assert SweepCell("real", 0).pretrained.name not in METHODS
    root = copy_project(tmp_path / "repo")
    methods = parse_methods("all", "lstm")
    widen(methods, None, root / "params.yaml")
    nodes = load_stage_graph(root, pipeline="comparison")  # DVC raises on overlapping outputs
    names = {n.name.rpartition("dvc.yaml:")[2] for n in nodes}  # addressed from this process's directory
    assert {f"train@real-{m}-0" for m in methods} <= names and "train@real-pretrained-0" in names


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
