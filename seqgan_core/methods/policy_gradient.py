"""Policy gradient on the generator's own samples: SeqGAN (D's P(real) as the reward, with
a choice of reward estimator), the authors' PG-BLEU baseline (BLEU against real data as
the reward, no D) and the constant-reward control of LantaoYu/SeqGAN#21.

One generator step, for every method here: sample ``batch_size`` sequences, weight every
token by the method's reward estimator (`reward_estimators`), one REINFORCE update
-sum_{b,t} log G(y_t | y_<t) * weight (``reduction`` "sum", the authors' code; "mean"
divides by B * T), then the estimator's own bookkeeping (the delayed rollout policy
moves after every generator step, as in the authors' loop). One discriminator step:
``d_negatives`` fresh samples and the estimator's round on them and the real data.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Literal

import torch

from ..train import policy_gradient_step
from .base import AdversarialMethod
from .reward_estimators import (ESTIMATORS, BleuRewards, ConstantReward, CriticSettings, PartialDSettings,
                                RewardEstimator, RolloutSettings)
from .settings import Settings, bounded, nested


@dataclasses.dataclass(frozen=True)
class PolicyGradientSettings(Settings):
    """``reduction``: the policy-gradient loss summed over batch and time (the authors'
    code) or averaged."""

    reduction: Literal["sum", "mean"] = "sum"


class PolicyGradientMethod(AdversarialMethod):
    """SeqGAN's loop; a subclass names the `RewardEstimator` that weights the samples (and
    trains what it scores). The estimator is built once the method's parts exist; the
    discriminator it trains, if not the pretrained one, earlier (`build_discriminator`)."""

    def estimator(self) -> type[RewardEstimator]:
        raise NotImplementedError

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rewards = self.estimator()(self)

    def build_discriminator(self, pretrained: torch.nn.Module) -> torch.nn.Module:
        return self.estimator().discriminator(self, pretrained)

    def generator_step(self, batch: int) -> dict[str, float]:
        samples = self.generator.sample(self.common.batch_size, rng=self.rng)
        weights, metrics = self.rewards.weights(samples)
        loss = policy_gradient_step(self.generator, self.g_optimizer, samples, weights,
                                    reduction=self.settings.reduction, grad_clip=self.common.grad_clip)
        self.rewards.after_generator_update()
        return {"g_loss": loss, **metrics}

    def discriminator_step(self, batch: int) -> dict[str, float]:
        if not self.trains_discriminator:
            return {}
        return self.rewards.discriminator_round(self.negatives(batch))

    def stateful(self) -> dict[str, Any]:
        return {**super().stateful(), **self.rewards.stateful()}


@dataclasses.dataclass(frozen=True)
class SeqGANSettings(PolicyGradientSettings):
    """``reward_estimator``: how a token's reward is estimated, each reading its own section:
    "rollout" (SeqGAN: Monte-Carlo completions scored by D), "partial_d" (Li et al. 2017: D
    trained on prefixes scores each prefix) or "critic" (MaskGAN: a per-token D's
    discounted rewards minus a learned value)."""

    reward_estimator: Literal["rollout", "partial_d", "critic"] = "rollout"
    rollout: RolloutSettings = nested(RolloutSettings)
    partial_d: PartialDSettings = nested(PartialDSettings)
    critic: CriticSettings = nested(CriticSettings)


class SeqGAN(PolicyGradientMethod):
    """`seqgan` (Yu et al., AAAI 2017) with the reward estimator its settings name. With
    "rollout" and rollout policy "current", `generator_step` is
    `seqgan_core.train.seqgan_generator_step` exactly (same draws, same update)."""

    name = "seqgan"
    trains_discriminator = True
    Settings = SeqGANSettings

    def estimator(self) -> type[RewardEstimator]:
        return ESTIMATORS[self.settings.reward_estimator]


@dataclasses.dataclass(frozen=True)
class PGBleuSettings(PolicyGradientSettings):
    """The authors' PG-BLEU: BLEU-3 (uniform weights) against a random 40% of the real
    data, one rollout per prefix, Adam at its default rate."""

    order: int = bounded(3, ge=1, le=5, description="BLEU-n of the reward")
    reference_fraction: float = bounded(0.4, gt=0, le=1, description="share of the training data used as references")
    # The authors' sentence_bleu had no smoothing, as NLTK 3.2 computed it (`BLEUReward`);
    # "method1" is Texygen's metric convention, the only one that ranks oracle text above noise.
    smoothing: Literal["none_nltk32", "none", "method1"] = "none_nltk32"
    lr: float = bounded(1e-3, gt=0, description="generator Adam learning rate (the authors: Adam's default)")
    rollout: RolloutSettings = dataclasses.field(default_factory=lambda: RolloutSettings(n_rollouts=1))


class PGBleu(PolicyGradientMethod):
    """`pg_bleu`: SeqGAN's loop with BLEU-n as the reward and no discriminator. The
    references are a share of the training data drawn once, first thing from the stream."""

    name = "pg_bleu"
    Settings = PGBleuSettings

    def estimator(self) -> type[RewardEstimator]:
        return BleuRewards

    def generator_lr(self) -> float:
        return self.settings.lr


@dataclasses.dataclass(frozen=True)
class PGConstantSettings(PolicyGradientSettings):
    """``reward`` 2.0: the value of the thread's experiment (LantaoYu/SeqGAN#21). Any
    positive constant gives the same updates up to Adam's epsilon (global-norm clipping
    and Adam both remove the scale); a negative one reverses them."""

    reward: float = bounded(2.0, description="every token's reward")


class PGConstant(PolicyGradientMethod):
    """`pg_constant`: the control of LantaoYu/SeqGAN#21, SeqGAN's loop with every token's
    reward replaced by a constant, and no discriminator. There, a constant reward (2.0, or
    uniform noise) lowered NLL-oracle faster than D's reward.

    With sum reduction the update is c * grad sum log G(samples): maximum likelihood on the
    generator's own samples. Its expectation is zero (E grad log p = 0), but each step
    raises the probability of what was just sampled, most often the already-likely
    sequences: the generator sharpens (lower entropy), which NLL-oracle rewards without
    any signal about the data. A gain of SeqGAN over this control, not over MLE alone, is
    what the adversarial signal adds."""

    name = "pg_constant"
    Settings = PGConstantSettings

    def estimator(self) -> type[RewardEstimator]:
        return ConstantReward
