"""SeqGAN's adversarial loop with a pluggable reward estimator, and its constant-reward
control. Method classes of the adversarial-method interface (generator_kind "lstm").

One generator step: sample ``batch_size`` sequences from the generator, weight every
token by the estimator (`methods.reward_estimators`), and make one REINFORCE update
-sum_{b,t} log G(y_t | y_<t) * weight (``reduction`` "sum", the authors' code; "mean"
divides by B*T). One discriminator step: ``d_negatives`` fresh samples and the
estimator's round on them and the real data.

Each method owns its optimisers (Adam: generator ``common.lr``, discriminator
``common.d_lr``), so ``stateful()`` returns them with whatever its estimator keeps (the
delayed rollout policy, a per-token D, the critic's optimiser). The delayed rollout
policy is updated after every generator step (the authors' loop: after each g-step).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..lstm import LSTMLanguageModel
from ..train import adam, policy_gradient_step
from .reward_estimators import (ESTIMATORS, ConstantReward, CriticSettings, PartialDSettings, RewardEstimator,
                                RolloutSettings)
from .settings import check_choice, check_range

REDUCTIONS = ("sum", "mean")


class PolicyGradientMethod:
    """The loop shared by SeqGAN, its estimator variants, RankGAN and the controls;
    subclasses say which `RewardEstimator` scores the samples."""
    generator_kind = "lstm"
    trains_discriminator = True

    def __init__(self, generator: LSTMLanguageModel, discriminator: Any, real: torch.Tensor, settings: Any,
                 common: Any, rng: torch.Generator) -> None:
        self.generator, self.real, self.settings, self.common, self.rng = generator, real, settings, common, rng
        self.g_optimizer = adam(generator.parameters(), common.lr)
        self.estimator = self.reward_estimator(generator, discriminator, real, settings, common, rng)

    def reward_estimator(self, generator: LSTMLanguageModel, discriminator: Any, real: torch.Tensor, settings: Any,
                         common: Any, rng: torch.Generator) -> RewardEstimator:
        raise NotImplementedError

    def generator_step(self, batch: int) -> dict[str, float]:
        samples = self.generator.sample(self.common.batch_size, rng=self.rng)
        weights, metrics = self.estimator.weights(samples)
        loss = policy_gradient_step(self.generator, self.g_optimizer, samples, weights,
                                    reduction=self.settings.reduction, grad_clip=self.common.grad_clip)
        self.estimator.after_generator_update()
        return {"g_loss": loss, **metrics}

    def discriminator_step(self, batch: int) -> dict[str, float]:
        if not self.trains_discriminator:
            return {}
        negatives = self.generator.sample(self.common.d_negatives, rng=self.rng)
        return self.estimator.discriminator_round(self.real, negatives)

    def stateful(self) -> dict[str, Any]:
        return {"g_optimizer": self.g_optimizer, **self.estimator.stateful()}


@dataclass(frozen=True)
class SeqGANSettings:
    """``reward_estimator``: "rollout" (SeqGAN, the default), "partial_d" or "critic"
    (see `methods.reward_estimators`); each reads its own sub-settings."""
    reward_estimator: str = "rollout"
    reduction: str = "sum"
    rollout: RolloutSettings = field(default_factory=RolloutSettings)
    partial_d: PartialDSettings = field(default_factory=PartialDSettings)
    critic: CriticSettings = field(default_factory=CriticSettings)

    def __post_init__(self) -> None:
        check_choice("reward_estimator", self.reward_estimator, tuple(ESTIMATORS))
        check_choice("reduction", self.reduction, REDUCTIONS)


class SeqGANMethod(PolicyGradientMethod):
    """SeqGAN (Yu et al., AAAI 2017) with the reward estimator its settings name. With
    "rollout" and rollout_policy "current", `generator_step` is
    `seqgan_core.train.seqgan_generator_step` exactly (same draws, same update)."""
    name = "seqgan"
    Settings = SeqGANSettings

    def reward_estimator(self, generator, discriminator, real, settings, common, rng) -> RewardEstimator:
        estimator = ESTIMATORS[settings.reward_estimator]
        return estimator(generator, discriminator, real, getattr(settings, settings.reward_estimator), common, rng)


@dataclass(frozen=True)
class PGConstantSettings:
    """``reward`` 2.0: the value of the thread's experiment (LantaoYu/SeqGAN#21). Any
    positive constant gives the same updates up to Adam's epsilon (global-norm clipping
    and Adam both remove the scale); a negative one reverses them."""
    reward: float = 2.0
    reduction: str = "sum"

    def __post_init__(self) -> None:
        check_range("reward", self.reward)
        check_choice("reduction", self.reduction, REDUCTIONS)


class PGConstantMethod(PolicyGradientMethod):
    """The control of LantaoYu/SeqGAN#21: SeqGAN's loop with every token's reward replaced
    by a constant, and no discriminator. There, a constant reward (2.0, or uniform noise)
    lowered NLL-oracle faster than D's reward.

    With sum reduction and no baseline the update is c * grad sum log G(samples): maximum
    likelihood on the generator's own samples. Its expectation is zero (E grad log p = 0),
    but each step raises the probability of what was just sampled, most often the
    already-likely sequences: the generator sharpens (lower entropy), which NLL-oracle
    rewards without any signal about the data. A gain of SeqGAN over this control, not
    over MLE alone, is what the adversarial signal adds."""
    name = "pg_constant"
    trains_discriminator = False
    Settings = PGConstantSettings

    def reward_estimator(self, generator, discriminator, real, settings, common, rng) -> RewardEstimator:
        return ConstantReward(settings.reward)
