"""Policy gradient with Monte-Carlo rollout rewards: SeqGAN (D's P(real) as the reward) and
the authors' PG-BLEU baseline (BLEU against real data as the reward, no D)."""
from __future__ import annotations

import dataclasses
from typing import Any, Literal

import torch

from .. import randomness
from ..bleu import BLEUReward
from ..rollout import DelayedPolicy, SequenceReward
from ..train import seqgan_generator_step
from .base import AdversarialMethod
from .settings import Settings, bounded, nested


@dataclasses.dataclass(frozen=True)
class RolloutSettings(Settings):
    """How a token's reward is estimated: the mean reward of ``n_rollouts`` completions of its
    prefix, sampled by the rollout policy: the generator itself (``current``, what the
    authors' code effectively does: its delayed update never reaches the rollout graph) or
    the paper's delayed copy beta (``delayed``, moved towards the generator by 1 - ``rate``
    after every generator step)."""

    n_rollouts: int = bounded(16, ge=1)
    policy: Literal["current", "delayed"] = "current"
    rate: float = bounded(0.8, ge=0, le=1, description="the delayed policy's beta <- rate beta + (1 - rate) theta")


@dataclasses.dataclass(frozen=True)
class SeqGANSettings(Settings):
    """``reduction``: the policy-gradient loss summed over batch and time (the authors' code)
    or averaged; ``baseline``: none (the paper) or the batch's mean reward subtracted."""

    reduction: Literal["sum", "mean"] = "sum"
    baseline: Literal["none", "batch_mean"] = "none"
    rollout: RolloutSettings = nested(RolloutSettings)


class SeqGAN(AdversarialMethod):
    """`seqgan`: sample a batch, reward every token by rollouts scored by D, REINFORCE; then
    D rounds on fresh negatives."""

    name = "seqgan"
    trains_discriminator = True
    Settings = SeqGANSettings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        r = self.settings.rollout
        self.policy = DelayedPolicy(self.generator, r.rate) if r.policy == "delayed" else None

    def reward(self) -> torch.nn.Module | SequenceReward:
        return self.discriminator

    def generator_step(self, batch: int) -> dict[str, float]:
        s = self.settings
        metrics = seqgan_generator_step(
            self.generator, self.reward(), self.g_optimizer, batch_size=self.common.batch_size,
            n_rollouts=s.rollout.n_rollouts, rollout_policy=self.policy.model if self.policy else None,
            reduction=s.reduction, baseline=None if s.baseline == "none" else s.baseline,
            grad_clip=self.common.grad_clip, rng=self.rng,
        )
        if self.policy is not None:
            self.policy.update(self.generator)
        return metrics

    def stateful(self) -> dict[str, Any]:
        return {**super().stateful(), **({"policy": self.policy.model} if self.policy else {})}


@dataclasses.dataclass(frozen=True)
class PGBleuSettings(SeqGANSettings):
    """The authors' PG-BLEU: BLEU-3 (uniform weights) against a random 40% of the real
    data, one rollout per prefix, Adam at its default rate."""

    order: int = bounded(3, ge=1, le=5, description="BLEU-n of the reward")
    reference_fraction: float = bounded(0.4, gt=0, le=1, description="share of the training data used as references")
    # The authors' sentence_bleu had no smoothing, as NLTK 3.2 computed it (`BLEUReward`);
    # "method1" is Texygen's metric convention, the only one that ranks oracle text above noise.
    smoothing: Literal["none_nltk32", "none", "method1"] = "none_nltk32"
    lr: float = bounded(1e-3, gt=0, description="generator Adam learning rate (the authors: Adam's default)")
    rollout: RolloutSettings = dataclasses.field(default_factory=lambda: RolloutSettings(n_rollouts=1))


class PGBleu(SeqGAN):
    """`pg_bleu`: SeqGAN's loop with BLEU-n as the reward and no discriminator. The
    references are a share of the training data drawn once, first thing from the stream."""

    name = "pg_bleu"
    trains_discriminator = False
    Settings = PGBleuSettings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        n = len(self.real)
        share = randomness.randperm(n, self.rng, device="cpu")[: max(1, round(self.settings.reference_fraction * n))]
        self.bleu_reward = BLEUReward(self.real[share], self.settings.order, eos_id=self.eos_id,
                                      smoothing=self.settings.smoothing)

    def generator_lr(self) -> float:
        return self.settings.lr

    def reward(self) -> SequenceReward:
        return self.bleu_reward
