"""dvc.yaml's code deps are the code each stage runs: derived from the stages' imports, so a
change to any module a stage imports re-runs it (no stale metrics after a code change)."""
from __future__ import annotations

import pytest
import yaml
from conftest import REPO_ROOT

from pipelines.code_deps import code_closure, missing_and_extra
from pipelines.config import AdversarialParams
from pipelines.stage_graph import PIPELINE_FILES

# Adversarial fields the comparison's stages may leave out of their params, and why.
NOT_COMPARISON_INPUTS = {
    "method": "each train stage trains the method of its matrix cell, whatever adversarial.method says",
    "checkpoint_every": "resuming is bit-identical, so results do not depend on how often state is saved",
}


def stages(pipeline: str) -> list[tuple[str, dict]]:
    doc = yaml.safe_load((REPO_ROOT / PIPELINE_FILES[pipeline]).read_text())
    return [(name, body.get("do", body)) for name, body in doc["stages"].items()]


@pytest.mark.parametrize("pipeline", sorted(PIPELINE_FILES))
def test_every_stage_lists_exactly_the_code_it_imports(pipeline: str) -> None:
    for name, body in stages(pipeline):
        deps = [d if isinstance(d, str) else next(iter(d)) for d in body["deps"]]
        missing, extra = missing_and_extra(body["cmd"], deps, REPO_ROOT)
        assert not missing, f"{PIPELINE_FILES[pipeline]} stage {name!r} runs {sorted(missing)} but does not list them in deps"
        assert not extra, f"{PIPELINE_FILES[pipeline]} stage {name!r} lists {sorted(extra)}, which it never imports"


def test_the_closure_follows_imports_inside_functions_and_package_inits() -> None:
    closure = code_closure("pipelines.stages.evaluate", REPO_ROOT)
    assert "pipelines/registry/gate.py" in closure  # imported inside main()
    assert "pipelines/scoring.py" in closure  # every score evaluate reports
    assert {"pipelines/__init__.py", "seqgan_core/__init__.py", "seqgan_core/bleu.py"} <= closure


def test_the_comparison_reads_every_adversarial_setting() -> None:
    (_, cell), = [(n, b) for n, b in stages("comparison") if n == "train"]
    params = set(cell["params"])
    uncovered = [f for f in AdversarialParams.model_fields
                 if f"adversarial.{f}" not in params and "adversarial" not in params and f not in NOT_COMPARISON_INPUTS]
    assert not uncovered, f"comparison/dvc.yaml's train stage does not list adversarial.{uncovered}: a change would not re-run it"
    assert not {f"adversarial.{f}" for f in NOT_COMPARISON_INPUTS} & params
    assert "methods.${item.method}" in params and "methods" not in params  # its own method's settings only
