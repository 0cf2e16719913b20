"""The adversarial steps RelGAN and GSGAN share: a Gumbel-softmax relaxation of the
generator's samples, a discriminator over (relaxed) one-hots, a GAN loss on its logits.

Subclasses choose the feedback ("hard" tokens for RelGAN, "soft" rows for GSGAN), the
discriminator, and `relaxation(step)`: the softmax's scale at adversarial step ``step``
(RelGAN's beta, GSGAN's 1 / tau) and the metric that logs it.
"""
from __future__ import annotations

import torch
from torch import nn

from ..adversarial_losses import discriminator_loss, generator_loss
from ..relaxed import Feedback, RelaxableGenerator, frozen, real_one_hots, relaxed_rollout
from ..train import _apply, adam


class GumbelGAN:
    trains_discriminator = True
    feedback: Feedback

    def __init__(self, generator: RelaxableGenerator, discriminator: nn.Module, real: torch.Tensor, loss: str, common,
                 rng: torch.Generator) -> None:
        """``discriminator``: the module this method trains (on the generator's device)."""
        self.generator, self.discriminator, self.real, self.loss = generator, discriminator, real, loss
        self.common, self.rng = common, rng
        self.g_optimizer = adam(generator.parameters(), common.lr)
        self.d_optimizer = adam(discriminator.parameters(), common.d_lr)

    def relaxation(self, step: int) -> tuple[float, dict[str, float]]:
        raise NotImplementedError

    def _fake(self, scale: float) -> torch.Tensor:
        return relaxed_rollout(self.generator, self.common.batch_size, scale=scale, feedback=self.feedback,
                               rng=self.rng)[1]

    def _real(self) -> torch.Tensor:
        g = self.generator
        return real_one_hots(self.real, self.common.batch_size, g.vocab_size, self.rng, g.device)

    def generator_step(self, batch: int) -> dict[str, float]:
        scale, metrics = self.relaxation(batch)
        self.generator.train()
        self.discriminator.train()  # RelGAN's D keeps its dropout in the generator's loss too
        fake = self._fake(scale)
        with frozen(self.discriminator) as d:
            fake_logits = d(fake)
            with torch.no_grad():  # only the relativistic loss reads real logits
                real_logits = d(self._real()) if self.loss == "rsgan" else None
        loss = generator_loss(self.loss, real_logits, fake_logits)
        value = _apply(self.g_optimizer, loss, list(self.generator.parameters()), self.common.grad_clip,
                       f"{self.name} generator loss")
        return {"g_loss": value, **metrics}

    def discriminator_step(self, batch: int) -> dict[str, float]:
        scale, _ = self.relaxation(batch)
        self.discriminator.train()
        with torch.no_grad():
            fake = self._fake(scale)
        loss = discriminator_loss(self.loss, self.discriminator(self._real()), self.discriminator(fake))
        value = _apply(self.d_optimizer, loss, list(self.discriminator.parameters()), self.common.grad_clip,
                       f"{self.name} discriminator loss")
        return {"d_loss": value}
