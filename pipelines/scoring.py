"""Generator scores shared by the training stages, `evaluate` and the method comparison.

Every setting that changes a score (sample sizes, orders, smoothing) is reported next to
it by `score_settings`.
"""
from __future__ import annotations

import torch

from seqgan_core import sequence_nll
from seqgan_core.bleu import BLEU, SelfBLEU
from seqgan_core.corpus import strip_eos
from seqgan_core.lstm import LSTMLanguageModel

from .config import Params
from .datasets import Dataset


def nll_scores(generator: LSTMLanguageModel, dataset: Dataset, n_samples: int, rng: torch.Generator) -> dict[str, float]:
    """NLL-test always; NLL-oracle (per token, over `n_samples` generated sequences) when
    the data come from an oracle. Both in nats per token."""
    scores = {"nll_test": sequence_nll(generator, dataset.test)}
    if dataset.kind.has_oracle:
        scores["nll_oracle"] = dataset.oracle.nll(generator.sample(n_samples, rng=rng))
    return scores


def final_scores(generator: LSTMLanguageModel, dataset: Dataset, samples: torch.Tensor, params: Params) -> dict[str, float]:
    """The scores `evaluate` reports for a trained generator and its ``samples``:
    NLL-test; NLL-oracle (synthetic); BLEU-n against the test set and Self-BLEU-n (corpora),
    in Texygen's convention (seqgan_core.bleu), sentences cut at their first <eos>."""
    e = params.evaluate
    scores = {"nll_test": sequence_nll(generator, dataset.test)}
    if dataset.kind.has_oracle:
        scores["nll_oracle"] = dataset.oracle.nll(samples)
    else:
        hypotheses = strip_eos(samples[: e.bleu_hypotheses])
        bleu = BLEU(strip_eos(dataset.test), max_n=max(e.bleu_orders))
        self_bleu = SelfBLEU(strip_eos(samples), max_n=max(e.bleu_orders), sample_size=e.self_bleu_size, seed=params.seed)
        for n in e.bleu_orders:
            scores[f"bleu{n}"] = bleu.corpus_mean(hypotheses, n)
            scores[f"self_bleu{n}"] = self_bleu.mean(n)
    return scores


def score_settings(dataset: Dataset, params: Params) -> dict:
    e = params.evaluate
    common = {"nll_test_sequences": len(dataset.test), "nll_units": "nats per token"}
    if dataset.kind.has_oracle:
        return {**common, "nll_oracle_samples": e.nll_samples}
    return {**common, "bleu": "Texygen: sentence_bleu vs whole test set, uniform cumulative weights, smoothing method1",
            "bleu_orders": e.bleu_orders, "bleu_hypotheses": min(e.bleu_hypotheses, e.nll_samples),
            "bleu_references": len(dataset.test), "self_bleu_sample_size": e.self_bleu_size,
            "tokenization": dataset.tokenizer, "padding": "stripped at first <eos>"}
