"""The stage contract (pipelines.contract) is what dvc.yaml says: every stage's outputs are
exactly the contract's artifacts of that stage, for every experiment; and each experiment
kind answers the questions the stages, tracking and the gate ask of it."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT

from pipelines.config import load_params
from pipelines.contract import EXPERIMENTS, KINDS, Artifacts, kind_of
from seqgan_core.corpus import Vocabulary


def dvc_outputs(stage: str, experiment: str) -> list[Path]:
    """The outs, metrics and plots of a stage of dvc.yaml, with foreach's ${item} filled in."""
    body = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"][stage]
    body = body.get("do", body)
    entries = [e for key in ("outs", "metrics", "plots") for e in body.get(key, [])]
    names = [e if isinstance(e, str) else next(iter(e)) for e in entries]
    return [Path(n.replace("${item}", experiment)) for n in names]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_dvc_yaml_outputs_are_the_contracts_artifacts(experiment: str) -> None:
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    artifacts = Artifacts(experiment)
    for stage, body in stages.items():
        if "foreach" not in body and kind_of(experiment).data_stage != stage:
            continue  # the other experiment's data stage
        assert dvc_outputs(stage, experiment) == artifacts.outputs(stage), stage


def test_each_data_stage_writes_its_experiments_data_folder() -> None:
    for name, kind in KINDS.items():
        assert kind.artifacts().data in kind.artifacts().outputs(kind.data_stage)
        assert kind.artifacts().dataset_spec.parent == kind.artifacts().data


def test_kinds_name_their_metrics_gate_and_registry_names() -> None:
    params = load_params(REPO_ROOT / "params.yaml")
    synthetic, real = kind_of("synthetic"), kind_of("real")
    assert (synthetic.headline_metric(params), synthetic.higher_is_better()) == ("nll_oracle", False)
    assert (real.headline_metric(params), real.higher_is_better()) == (f"bleu{params.promotion.real_bleu_order}", True)
    rule = real.gate_rule(params)
    assert (rule.metric, rule.margin, rule.guard_metric) == ("bleu2", params.promotion.real_margin, "nll_test")
    assert synthetic.gate_rule(params).guard_tolerance == params.promotion.synthetic_nll_test_tolerance
    assert synthetic.model_name(params) == params.tracking.synthetic_model_name
    assert real.model_name(params) == f"{params.tracking.real_model_prefix}-{params.corpus.name}"
    assert real.mlflow_experiment(params) == f"seqgan-real-{params.corpus.name}"
    with pytest.raises(ValueError, match="unknown experiment 'other'"):
        kind_of("other")


def test_decoders() -> None:
    vocab = Vocabulary.build([["a", "b"], ["b", "c"]], max_size=10)
    ids = vocab.encode(["b", "a"])
    assert kind_of("synthetic").decoder(None, "char")([3, 1, 4]) == "3 1 4"
    assert kind_of("real").decoder(vocab, "char")(ids) == "ba"
    assert kind_of("real").decoder(vocab, "whitespace")(ids) == "b a"
