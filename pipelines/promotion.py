"""Which metric the registry gate compares for an experiment, from params.yaml."""
from __future__ import annotations

from typing import Any

from .config import Params, load_params


def gate_rule(params: Params, experiment: str) -> dict[str, Any]:
    """Synthetic: lower NLL-oracle wins. Real data: higher BLEU-n wins. Both provided NLL-test
    is not worse by more than a tolerance: NLL-oracle and BLEU alone reward mode collapse
    (a generator that repeats one likely loop scores well on both)."""
    p = params.promotion
    if experiment == "synthetic":
        return {"metric": "nll_oracle", "higher_is_better": False, "margin": p.synthetic_margin,
                "guard_metric": "nll_test", "guard_tolerance": p.synthetic_nll_test_tolerance}
    return {
        "metric": f"bleu{p.real_bleu_order}", "higher_is_better": True, "margin": p.real_margin,
        "guard_metric": "nll_test", "guard_tolerance": p.real_nll_test_tolerance,
    }


def experiment_of(model_name: str, version: str) -> str:
    """The experiment ("synthetic" / "real") a registered version was trained on (its tag)."""
    from .registry import EXPERIMENT_KIND_TAG
    from .tracking import client

    tags = client().get_model_version(model_name, str(version)).tags
    if EXPERIMENT_KIND_TAG not in tags:
        raise ValueError(f"{model_name} v{version} has no {EXPERIMENT_KIND_TAG!r} tag: not registered by `evaluate`")
    return tags[EXPERIMENT_KIND_TAG]


def promote_version(model_name: str, version: str, *, margin: float | None = None, flow_run: str | None = None):
    from .registry import promote

    rule = gate_rule(load_params(), experiment_of(model_name, version))
    if margin is not None:
        rule["margin"] = margin
    return promote(model_name, version, **rule, flow_run=flow_run)
