"""MaliGAN (Che et al., 2017): importance weights r = D/(1-D), normalised over a group of
samples, in place of SeqGAN's rollout rewards; the full version mixes in MLE on real
prefixes that shrink as training goes on."""
from __future__ import annotations

import dataclasses
from typing import Any, Literal

import torch

from ..train import maligan_generator_step, mixed_mle_prefix_length, real_prefix_negatives
from .base import AdversarialMethod
from .settings import Settings, bounded


@dataclasses.dataclass(frozen=True)
class MaliGANBasicSettings(Settings):
    """``baseline`` is b in sum_i (w_i - b) grad log p(x_i), which the paper leaves open
    (mean_weight: b = 1/m, the mean of the normalised weights)."""

    baseline: Literal["mean_weight", "none"] = "mean_weight"


@dataclasses.dataclass(frozen=True)
class MaliGANFullSettings(MaliGANBasicSettings):
    """Mixed MLE: m completions per real prefix; the prefix N falls from T by K per batch."""

    completions: int = bounded(8, ge=2, description="samples per real prefix (m); the batch holds batch_size // m prefixes")
    prefix_drop: int = bounded(1, ge=1, description="the kept prefix N falls from T by this per batch (K)")
    # D's negatives: Algorithm 2's samples that keep the first N real tokens, or free-running
    # samples (what this project did before; SeqGAN's and MaliGAN-basic's).
    negatives: Literal["real_prefix", "free_running"] = "real_prefix"


class MaliGANBasic(AdversarialMethod):
    """`maligan_basic`: one group of ``batch_size`` fresh samples, weighted by D/(1-D)."""

    name = "maligan_basic"
    trains_discriminator = True
    Settings = MaliGANBasicSettings

    def prefixes(self, batch: int) -> torch.Tensor:
        return torch.empty(1, 0, dtype=torch.long, device=self.generator.device)

    def group_size(self) -> int:
        return self.common.batch_size

    def generator_step(self, batch: int) -> dict[str, float]:
        return maligan_generator_step(
            self.generator, self.discriminator, self.g_optimizer, self.prefixes(batch), completions=self.group_size(),
            baseline=self.settings.baseline == "mean_weight", grad_clip=self.common.grad_clip, rng=self.rng,
        )


class MaliGANFull(MaliGANBasic):
    """`maligan_full` (mixed MLE): ``batch_size // m`` real sequences keep their first N
    tokens, m samples complete each; the sampled part gets the weighted update and the
    prefix MLE; N falls from T by K per batch (the paper: per iteration)."""

    name = "maligan_full"
    Settings = MaliGANFullSettings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.settings.completions > self.common.batch_size:
            raise ValueError(f"completions = {self.settings.completions} exceeds batch_size = "
                             f"{self.common.batch_size}; a batch must hold at least one prefix's completions")

    def prefixes(self, batch: int) -> torch.Tensor:
        m = self.settings.completions
        keep = mixed_mle_prefix_length(batch, self.generator.seq_len, self.settings.prefix_drop)
        return self.real_batch(self.common.batch_size // m)[:, :keep]

    def group_size(self) -> int:
        return self.settings.completions

    def negatives(self, batch: int) -> torch.Tensor:
        """Algorithm 2 trains D at the N of the next generator update: D rounds follow G's here."""
        if self.settings.negatives == "free_running":
            return super().negatives(batch)
        keep = mixed_mle_prefix_length(batch + 1, self.generator.seq_len, self.settings.prefix_drop)
        return real_prefix_negatives(self.generator, self.real, self.common.d_negatives, keep, rng=self.rng)
