"""RankGAN (Lin et al., NIPS 2017) as a method of the adversarial-method interface:
SeqGAN's loop (`methods.policy_gradient`) whose rollout completions are scored by a
ranker (`seqgan_core.ranking`) instead of a classifier, and whose discriminator round
trains that ranker.

The ranker is the pipeline's CNN `Discriminator`, used through its trunk
(`Discriminator.features`); its output layer is left untouched. Public code
(cookielee77/RankGan-NIPS2017, the only RankGAN code found; whether it is the authors'
is unverified) pretrains the ranker with the ranking loss (50 rounds of 3 epochs on
10,000 fresh negatives): `seqgan_core.ranking.ranker_round` is one such round, for a
RankGAN pretraining stage. Starting instead from the SeqGAN-pretrained classifier's trunk
is a departure (the ranker's initial features are then a classifier's).

Generator step, as the code: sample B, draw a reference set of ``reference_size`` real
sentences, N rollouts per prefix, reward = rank score of each completion among the B
completions of the same (rollout, prefix length), averaged over rollouts (the final
column: the samples among themselves), summed REINFORCE loss, Adam ``common.lr`` (code:
0.01). Discriminator step: fresh negatives, `ranker_round` (Adam ``common.d_lr``, code
1e-4; code: 1 epoch per round, 5 rounds per generator step).

Defaults follow the public code, not the paper (``rank_score`` "summed_cosine",
``reward`` "probability"); the paper's are the named alternatives ("mean_log_softmax",
"log_probability"). Why: the paper's formulas are known here only as recalled in the
project's reference notes (unverified), while the code is what exists, reproduces the
paper's synthetic result (NLL-oracle minimum 8.149 in its log vs the paper's 8.247), and
is what every port follows; and the paper's log-rank reward is negative for every
sentence (about -log B), so without a baseline each summed update is dominated by that
constant (the constant-reward control with its sign reversed: it flattens the generator)
rather than by the ranking (under a fixed ranker, five steps with the paper's reward
lowered the log-probability of the ranker's best sentence for two of three seeds; with
a batch-mean baseline, ``rollout.baseline``, they raise it: tests/test_pg_family.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..discriminator import Discriminator
from ..lstm import LSTMLanguageModel
from ..ranking import RANK_REWARDS, RANK_SCORES, RankReward, draw_references, ranker_round
from .policy_gradient import REDUCTIONS, PolicyGradientMethod
from .reward_estimators import RewardEstimator, RolloutRewards, RolloutSettings
from .settings import check_choice, check_range


@dataclass(frozen=True)
class RankGANSettings:
    """``gamma`` 1 and ``reference_size`` 16 (the code; the reference set is redrawn for
    every ranker batch and every generator step). ``rollout``: as SeqGAN's (the code's
    delayed policy has SeqGAN's defect, so it effectively uses "current")."""
    gamma: float = 1.0
    reference_size: int = 16
    rank_score: str = "summed_cosine"
    reward: str = "probability"
    reduction: str = "sum"
    rollout: RolloutSettings = field(default_factory=RolloutSettings)

    def __post_init__(self) -> None:
        check_range("gamma", self.gamma, low=0.0, low_open=True)
        check_range("reference_size", self.reference_size, low=1, integer=True)
        check_choice("rank_score", self.rank_score, RANK_SCORES)
        check_choice("reward", self.reward, RANK_REWARDS)
        check_choice("reduction", self.reduction, REDUCTIONS)


class RankRewards(RolloutRewards):
    """Rollout rewards with the ranker as the scorer, and the ranker's round."""

    def __init__(self, generator: LSTMLanguageModel, ranker: Discriminator, real: torch.Tensor,
                 settings: RankGANSettings, common: Any, rng: torch.Generator) -> None:
        super().__init__(generator, ranker, real, settings.rollout, common, rng)
        self.rank = settings

    def scorer(self, group_size: int) -> RankReward:
        references = draw_references(self.real, self.rank.reference_size, self.rng, self.generator.device)
        return RankReward(self.discriminator, references, group_size=group_size, gamma=self.rank.gamma,
                          rank_score=self.rank.rank_score, reward=self.rank.reward)

    def discriminator_round(self, real: torch.Tensor, negatives: torch.Tensor) -> dict[str, float]:
        r = self.rank
        return ranker_round(self.discriminator, self.d_optimizer, real, negatives, reference_size=r.reference_size,
                            gamma=r.gamma, rank_score=r.rank_score, epochs=self.common.d_epochs,
                            batch_size=self.common.d_batch_size, rng=self.rng)


class RankGANMethod(PolicyGradientMethod):
    name = "rankgan"
    Settings = RankGANSettings

    def reward_estimator(self, generator, discriminator, real, settings, common, rng) -> RewardEstimator:
        return RankRewards(generator, discriminator, real, settings, common, rng)
