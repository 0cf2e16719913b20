"""Generator scores shared by the training stages and `evaluate`."""
from __future__ import annotations

import torch

from seqgan_core import sequence_nll
from seqgan_core.lstm import LSTMLanguageModel

from .runtime import Dataset


def nll_scores(generator: LSTMLanguageModel, dataset: Dataset, n_samples: int, rng: torch.Generator) -> dict[str, float]:
    """NLL-test always; NLL-oracle (per token, over `n_samples` generated sequences) when
    the data come from an oracle. Both in nats per token."""
    scores = {"nll_test": sequence_nll(generator, dataset.test)}
    if dataset.oracle is not None:
        scores["nll_oracle"] = dataset.oracle.nll(generator.sample(n_samples, rng=rng))
    return scores
