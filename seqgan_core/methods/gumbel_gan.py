"""The adversarial steps RelGAN and GSGAN share: a Gumbel-softmax relaxation of the
generator's samples, a discriminator over (relaxed) one-hots, a GAN loss on its logits.

Subclasses choose the feedback ("hard" tokens for RelGAN, "soft" rows for GSGAN), the
discriminator (`build_discriminator`), and `relaxation(step)`: the softmax's scale at
adversarial step ``step`` (RelGAN's beta, GSGAN's 1 / tau) and the metric that logs it.
Both steps draw ``common.batch_size`` sequences (real and generated); the SeqGAN D-round
settings (d_epochs, d_negatives, d_batch_size) do not apply.
"""
from __future__ import annotations

from typing import Any

import torch

from ..adversarial_losses import discriminator_loss, generator_loss
from ..discriminator import Discriminator
from ..relaxed import Feedback, frozen, one_hot, relaxed_rollout
from ..relaxed_discriminators import SoftSeqGANDiscriminator
from ..train import _apply
from .base import AdversarialMethod


class GumbelGAN(AdversarialMethod):
    trains_discriminator = True
    feedback: Feedback

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # What reads (relaxed) one-hot rows: the discriminator itself, or the SeqGAN CNN
        # through its embedding matrix (the same parameters).
        d = self.discriminator
        self.relaxed_discriminator = SoftSeqGANDiscriminator(d) if isinstance(d, Discriminator) else d

    def relaxation(self, step: int) -> tuple[float, dict[str, float]]:
        raise NotImplementedError

    def horizon(self) -> int:
        """The schedule's N: ``settings.anneal_steps``, or the run's length when it is None."""
        steps = self.settings.anneal_steps
        return self.common.batches if steps is None else steps

    def _fake(self, scale: float) -> torch.Tensor:
        return relaxed_rollout(self.generator, self.common.batch_size, scale=scale, feedback=self.feedback,
                               rng=self.rng)[1]

    def _real(self) -> torch.Tensor:
        return one_hot(self.real_batch(self.common.batch_size), self.generator.vocab_size)

    def generator_step(self, batch: int) -> dict[str, float]:
        scale, metrics = self.relaxation(batch)
        self.generator.train()
        self.discriminator.train()  # RelGAN's D keeps its dropout in the generator's loss too
        fake = self._fake(scale)
        with frozen(self.relaxed_discriminator) as d:
            fake_logits = d(fake)
            with torch.no_grad():  # only the relativistic loss reads real logits
                real_logits = d(self._real()) if self.settings.loss == "rsgan" else None
        loss = generator_loss(self.settings.loss, real_logits, fake_logits)
        value = _apply(self.g_optimizer, loss, list(self.generator.parameters()), self.common.grad_clip,
                       f"{self.name} generator loss")
        return {"g_loss": value, **metrics}

    def discriminator_step(self, batch: int) -> dict[str, float]:
        scale, _ = self.relaxation(batch)
        d = self.relaxed_discriminator
        d.train()
        with torch.no_grad():
            fake = self._fake(scale)
        loss = discriminator_loss(self.settings.loss, d(self._real()), d(fake))
        value = _apply(self.d_optimizer, loss, list(d.parameters()), self.common.grad_clip,
                       f"{self.name} discriminator loss")
        return {"d_loss": value}
