"""RankGAN (Lin et al., NIPS 2017): SeqGAN's loop (`methods.policy_gradient`) whose
rollout completions are scored by a ranker (`seqgan_core.ranking`) instead of a
classifier, and whose discriminator round trains that ranker.

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

import dataclasses
from typing import Literal

import torch

from ..ranking import RankReward, draw_references, ranker_round
from .policy_gradient import PolicyGradientMethod, PolicyGradientSettings
from .reward_estimators import RewardEstimator, RolloutRewards, RolloutSettings
from .settings import bounded, nested


@dataclasses.dataclass(frozen=True)
class RankGANSettings(PolicyGradientSettings):
    """``gamma`` 1 and ``reference_size`` 16 (the code; the reference set is redrawn for
    every ranker batch and every generator step). ``rollout``: as SeqGAN's (the code's
    delayed policy has SeqGAN's defect, so it effectively uses "current")."""

    gamma: float = bounded(1.0, gt=0, description="inverse temperature of the rank softmax")
    reference_size: int = bounded(16, ge=1, description="real reference sentences per ranking")
    rank_score: Literal["summed_cosine", "mean_log_softmax"] = "summed_cosine"
    reward: Literal["probability", "log_probability"] = "probability"
    rollout: RolloutSettings = nested(RolloutSettings)


class RankRewards(RolloutRewards):
    """Rollout rewards with the ranker as the scorer, and the ranker's round."""

    def scorer(self, group_size: int) -> RankReward:
        m, s = self.method, self.method.settings
        references = draw_references(m.real, s.reference_size, m.rng, m.generator.device)
        return RankReward(m.discriminator, references, group_size=group_size, gamma=s.gamma,
                          rank_score=s.rank_score, reward=s.reward)

    def discriminator_round(self, negatives: torch.Tensor) -> dict[str, float]:
        m, s = self.method, self.method.settings
        return ranker_round(m.discriminator, m.d_optimizer, m.real, negatives, reference_size=s.reference_size,
                            gamma=s.gamma, rank_score=s.rank_score, epochs=m.common.d_epochs,
                            batch_size=m.common.d_batch_size, rng=m.rng)


class RankGAN(PolicyGradientMethod):
    """`rankgan`: see the module docstring."""

    name = "rankgan"
    trains_discriminator = True
    Settings = RankGANSettings

    def estimator(self) -> type[RewardEstimator]:
        return RankRewards
