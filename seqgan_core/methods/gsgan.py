"""GSGAN (Kusner & Hernandez-Lobato, NIPS 2016 workshop): a GAN over Gumbel-softmax
sequences, the generator fed back its own relaxed outputs.

One adversarial step n at temperature tau_n = `anneal`(tau_start, tau_end, n, N, schedule):

- generator step: unroll the LSTM generator on y_t = softmax((o_t + g_t) / tau_n), g_t ~
  Gumbel(0, 1), feeding back y_t @ embedding (a soft token: the whole path is
  differentiable); D sees the y_t; G minimises the GAN loss (non-saturating by default).
- discriminator step: fresh relaxed fakes (no gradient to G) and a fresh real batch as
  exact one-hots, one update of D on the standard GAN loss.

What is and is not the paper's (REFERENCE_MODELS.md section 4; no official code exists,
and the paper's sizes, tau values and schedule are unverified here):
- the discriminator is an LSTM, as in the paper (``discriminator`` "lstm", trained from
  scratch, sizes this project's); "seqgan_cnn" instead trains the pipeline's pretrained
  SeqGAN CNN in place, read through its embedding matrix;
- tau is annealed from high to low as the paper studies; the values (5 -> 1, "exp" over
  the run) are this project's choice, as are the learning rates (the shared ones);
- the paper draws the generator's initial state from noise; here the noise is the Gumbel
  perturbation alone and the initial state is the generator's own, so the generator that
  is trained is the one `sample()` evaluates (a hard draw at temperature 1);
- the generator is the pipeline's MLE-pretrained LSTM (the paper trains from scratch; every
  oracle comparison here starts from the same pretrained model).
Texygen's port (noise added to the hidden state, tau fixed at 10, argmax tokens, a double
softmax in D) is not followed.
"""
from __future__ import annotations

import dataclasses
from typing import Literal

import torch

from ..adversarial_losses import GANLoss
from ..relaxed import Schedule, anneal
from ..relaxed_discriminators import LSTMDiscriminator
from .gumbel_gan import GumbelGAN
from .settings import Settings, bounded


@dataclasses.dataclass(frozen=True)
class GSGANSettings(Settings):
    tau_start: float = bounded(5.0, gt=0, description="first temperature (this project's choice)")
    tau_end: float = bounded(1.0, gt=0, description="last temperature (this project's choice)")
    schedule: Schedule = "exp"
    anneal_steps: int | None = bounded(None, ge=1, description="the schedule's N; null: the run's length")
    loss: GANLoss = "standard"  # the standard GAN loss (non-saturating G); "js" is the minimax G loss
    discriminator: Literal["lstm", "seqgan_cnn"] = "lstm"
    d_emb_dim: int = bounded(64, ge=1, description="the LSTM discriminator's embedding size")
    d_hidden: int = bounded(32, ge=1, description="the LSTM discriminator's hidden size")


class GSGAN(GumbelGAN):
    """`gsgan`: see the module docstring."""

    name = "gsgan"
    Settings = GSGANSettings
    feedback = "soft"

    def build_discriminator(self, pretrained: torch.nn.Module) -> torch.nn.Module:
        s, g = self.settings, self.generator
        if s.discriminator == "seqgan_cnn":
            return pretrained
        return LSTMDiscriminator(g.vocab_size, s.d_emb_dim, s.d_hidden, rng=self.rng).to(g.device)

    def relaxation(self, step: int) -> tuple[float, dict[str, float]]:
        s = self.settings
        tau = anneal(s.tau_start, s.tau_end, step, self.horizon(), s.schedule)
        return 1.0 / tau, {"tau": tau}
