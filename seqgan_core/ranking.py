"""RankGAN's ranker (Lin et al., NIPS 2017): rank scores of sentences among a comparison
set, relative to a reference set of real sentences, and the ranker's training round.

The ranker is the SeqGAN CNN trunk (`Discriminator.features`: max-pooled filter responses
after the highway layer, 1,720 of them at the paper's sizes); its 2-way output layer is not
used. For a sentence s with feature y_s and a reference u:

    relevance        alpha(s | u) = cos(y_s, y_u)
    rank score       P(s | u, C)  = exp(gamma alpha(s|u)) / sum_{s' in C} exp(gamma alpha(s'|u))

Two ways to combine the references U, as the named option ``rank_score``:

* ``"summed_cosine"`` (the public code, cookielee77/RankGan-NIPS2017 ``ranker.py``, and
  the Texygen and TextBox ports): the cosines are summed over U *before* the softmax,
  P(s) = softmax_C(gamma * sum_u cos(y_s, y_u)).
* ``"mean_log_softmax"`` (the paper's expected log rank, as the project's reference
  notes give it; not checked against the PDF): log R(s) = mean_u log P(s | u, C).

`log_rank_scores` returns the log of either. The comparison set C is a group of
consecutive rows: the ranker's training batch (real and generated mixed, as in the code),
or, for rewards, the B completions of one (rollout, prefix length) pair (`RankReward`).
"""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from . import randomness
from .discriminator import Discriminator
from .train import _apply, balanced_round

RankScore = Literal["summed_cosine", "mean_log_softmax"]
RewardKind = Literal["probability", "log_probability"]
RANK_SCORES = ("summed_cosine", "mean_log_softmax")
RANK_REWARDS = ("probability", "log_probability")


def cosines(features: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """cos(y_s, y_u) for every sentence s (M, F) and reference u (U, F): (M, U). A zero
    feature vector (every filter dead) has cosine 0 with everything, as TF's l2_normalize."""
    return F.normalize(features, dim=1) @ F.normalize(references, dim=1).T


def log_rank_scores(cos: torch.Tensor, *, group_size: int, gamma: float, rank_score: RankScore) -> torch.Tensor:
    """log rank score (M,) of each row of ``cos`` (M, U) among its comparison set: the
    ``group_size`` consecutive rows it belongs to (see the module docstring)."""
    M, U = cos.shape
    if M % group_size:
        raise ValueError(f"{M} sentences do not form comparison sets of {group_size}")
    groups = cos.view(-1, group_size, U)
    if rank_score == "summed_cosine":
        return torch.log_softmax(gamma * groups.sum(dim=2), dim=1).reshape(M)
    if rank_score == "mean_log_softmax":
        return torch.log_softmax(gamma * groups, dim=1).mean(dim=2).reshape(M)
    raise ValueError(f"rank_score must be one of {RANK_SCORES}, got {rank_score!r}")


def ranker_loss(log_scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The ranker's loss on one comparison set: -(mean log score of the real sentences
    - mean log score of the generated ones), as in the code. A side absent from the batch
    contributes 0 (the code would divide by zero)."""
    real = labels == 1
    def side_mean(mask: torch.Tensor) -> torch.Tensor:
        return (log_scores * mask).sum() / mask.sum().clamp(min=1)
    return -(side_mean(real) - side_mean(~real))


def draw_references(real: torch.Tensor, size: int, rng: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """A reference set U: ``size`` real sentences drawn uniformly with replacement (as the
    code's ``get_ref``, redrawn for every ranker batch and every generator step)."""
    return real[randomness.randint(len(real), (size,), rng, device=real.device)].to(device)


class RankReward:
    """Rank-score rewards of sentences for `seqgan_core.rollout.rollout` (a sequence scorer).

    ``rollout`` scores all completions at once, rows ordered (prefix length, rollout,
    sequence), so each consecutive block of ``group_size`` = B rows is one comparison set:
    the B completions of one prefix length in one rollout, exactly the code's softmax over
    the generated batch (``all_rank_score``); the final column (the samples themselves) is
    one block too. The reward is the rank score itself (``"probability"``, the code: values
    in (0, 1), mean 1/B) or its log (``"log_probability"``, the paper's log R).
    Features are computed without dropout (the code's keep-prob 1.0 for rewards).
    """

    def __init__(self, ranker: Discriminator, references: torch.Tensor, *, group_size: int, gamma: float,
                 rank_score: RankScore, reward: RewardKind, batch_size: int = 1024) -> None:
        if reward not in RANK_REWARDS:
            raise ValueError(f"reward must be one of {RANK_REWARDS}, got {reward!r}")
        self.ranker, self.group_size, self.gamma = ranker, group_size, gamma
        self.rank_score, self.reward, self.batch_size = rank_score, reward, batch_size
        self.reference_features = ranker.eval_features(references, batch_size)

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        cos = cosines(self.ranker.eval_features(tokens, self.batch_size), self.reference_features)
        log_scores = log_rank_scores(cos, group_size=self.group_size, gamma=self.gamma, rank_score=self.rank_score)
        return log_scores.exp() if self.reward == "probability" else log_scores


def ranker_round(
    ranker: Discriminator,
    optimizer: torch.optim.Optimizer,
    positives: torch.Tensor,
    negatives: torch.Tensor,
    *,
    reference_size: int = 16,
    gamma: float = 1.0,
    rank_score: RankScore = "summed_cosine",
    epochs: int = 1,
    batch_size: int = 64,
    rng: torch.Generator | None = None,
) -> dict[str, float]:
    """One round of ranker training on real (``positives``) and generated sentences.

    As in the code: mini-batches of real and generated sentences shuffled together are
    each one comparison set, ranked against a fresh reference set of ``reference_size``
    real sentences; dropout (the trunk's, keep 0.75) applies to the batch's and the
    references' features; Adam (the code: 1e-4). The code's schedule: pretraining 50 rounds
    of 3 epochs on 10,000 fresh negatives; adversarial 5 rounds of 1 epoch per generator
    step. ``d_accuracy`` counts a real sentence right when its rank score is above the
    uniform 1/|C| and a generated one when below.
    """
    device = ranker.out.weight.device
    params = list(ranker.parameters())  # the unused output layer gets no gradient, so no step

    def update(x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        references = draw_references(positives, reference_size, rng, device)
        features = ranker.dropout(ranker.features(torch.cat([x, references])))
        cos = cosines(features[: len(x)], features[len(x):])
        log_scores = log_rank_scores(cos, group_size=len(x), gamma=gamma, rank_score=rank_score)
        above_uniform = log_scores > -math.log(len(x))
        loss = _apply(optimizer, ranker_loss(log_scores, y), params, 0.0, "ranker loss")
        return loss, (above_uniform == (y == 1)).sum().item()

    ranker.train()
    return balanced_round(positives, negatives, update, epochs=epochs, batch_size=batch_size, rng=rng, device=device)
