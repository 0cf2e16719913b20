"""The settings written next to every corpus score (evaluate.json, the comparison's frontier).

REFERENCE.md, metric conventions: "Report the settings (n, smoothing, sample sizes,
tokenisation, lowercasing) with every score." Lowercasing changes which tokens BLEU and
Self-BLEU count as matches (and the vocabulary NLL-test is over), as tokenisation does.
"""
from __future__ import annotations

from types import SimpleNamespace

import torch

from conftest import REPO_ROOT
from pipelines.config import load_params
from pipelines.contract import kind_of
from pipelines.scoring import Scorer


def _scorer(lowercase: bool) -> Scorer:
    params = load_params(REPO_ROOT / "params.yaml")
    params = params.model_copy(update={"corpus": params.corpus.model_copy(update={"lowercase": lowercase})})
    data = SimpleNamespace(kind=kind_of("real"), test=torch.zeros(100, 4), train=torch.zeros(900, 4), tokenizer="char")
    return Scorer(data, params)


def test_corpus_scores_report_lowercasing_beside_tokenisation():
    """Before: `settings()` named the tokenizer but not whether the corpus was lowercased, so
    two BLEU-2 figures over the same text, cased and lowercased, read as the same setting."""
    for lowercase in (False, True):
        settings = _scorer(lowercase).settings()
        assert settings["tokenization"] == "char"
        assert settings["lowercase"] is lowercase
        assert "<eos> padding included" in settings["nll_tokens"]  # which tokens NLL-test averages over


def test_lowercasing_is_part_of_the_scoring_version():
    """The registry gate compares only scores of one scoring version; lowercasing changes the
    scores as tokenisation does, so it changes the version too."""
    assert _scorer(True).version() != _scorer(False).version()


def test_synthetic_scores_do_not_claim_a_text_setting():
    params = load_params(REPO_ROOT / "params.yaml")
    data = SimpleNamespace(kind=kind_of("synthetic"), test=torch.zeros(10, 4), train=torch.zeros(90, 4), tokenizer="char")
    assert "lowercase" not in Scorer(data, params).settings()
