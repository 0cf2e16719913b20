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
from .base import AdversarialMethod, bounded, check_bounds


class SeqGAN(AdversarialMethod):
    """`seqgan`: sample a batch, reward every token by N rollouts scored by D, REINFORCE;
    then D rounds on fresh negatives. The rollout policy is the generator itself
    (``rollout_policy: current``, what the authors' code effectively does) or the paper's
    delayed copy beta (``delayed``, updated after every generator step)."""

    name = "seqgan"
    trains_discriminator = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        delayed = self.common.rollout_policy == "delayed"
        self.policy = DelayedPolicy(self.generator, self.common.rollout_rate) if delayed else None

    def reward(self) -> torch.nn.Module | SequenceReward:
        return self.discriminator

    def n_rollouts(self) -> int:
        return self.common.n_rollouts

    def generator_step(self, batch: int) -> dict[str, float]:
        c = self.common
        metrics = seqgan_generator_step(
            self.generator, self.reward(), self.g_optimizer, batch_size=c.batch_size, n_rollouts=self.n_rollouts(),
            rollout_policy=self.policy.model if self.policy else None, reduction=c.pg_reduction,
            baseline=None if c.baseline == "none" else c.baseline, grad_clip=c.grad_clip, rng=self.rng,
        )
        if self.policy is not None:
            self.policy.update(self.generator)
        return metrics

    def stateful(self) -> dict[str, Any]:
        return {**super().stateful(), **({"policy": self.policy.model} if self.policy else {})}


@dataclasses.dataclass(frozen=True)
class PGBleuSettings:
    """The authors' PG-BLEU: BLEU-3 (uniform weights) against a random 40% of the real
    data, one rollout per prefix."""

    order: int = bounded(3, ge=1, le=5, description="BLEU-n of the reward")
    reference_fraction: float = bounded(0.4, gt=0, le=1, description="share of the training data used as references")
    n_rollouts: int = bounded(1, ge=1)
    # The authors' sentence_bleu had no smoothing, as NLTK 3.2 computed it (`BLEUReward`);
    # "method1" is Texygen's metric convention, the only one that ranks oracle text above noise.
    smoothing: Literal["none_nltk32", "none", "method1"] = "none_nltk32"
    lr: float = bounded(1e-3, gt=0, description="generator Adam learning rate (the authors: Adam's default)")

    def __post_init__(self) -> None:
        check_bounds(self)


class PGBleu(SeqGAN):
    """`pg_bleu`: SeqGAN's loop with BLEU-n as the reward and no discriminator. The
    references are a share of the training data drawn once, first thing from the stream."""

    name = "pg_bleu"
    trains_discriminator = False
    Settings = PGBleuSettings
    settings_key = "pg_bleu"

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

    def n_rollouts(self) -> int:
        return self.settings.n_rollouts
