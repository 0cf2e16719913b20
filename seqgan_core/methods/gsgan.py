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
- the discriminator is an LSTM, as in the paper (`discriminator = "lstm"`, trained from
  scratch, sizes this project's); ``"seqgan_cnn"`` instead trains the pipeline's
  pretrained SeqGAN CNN in place, read through its embedding matrix;
- tau is annealed from high to low as the paper studies; the values (5 -> 1, "exp" over
  the run) are this project's choice;
- the paper draws the generator's initial state from noise; here the noise is the Gumbel
  perturbation alone and the initial state is the generator's own, so the generator that
  is trained is the one `sample()` evaluates (a hard draw at temperature 1);
- the generator is the pipeline's MLE-pretrained LSTM (the paper trains from scratch; every
  oracle comparison here starts from the same pretrained model).
Texygen's port (noise added to the hidden state, tau fixed at 10, argmax tokens, a double
softmax in D) is not followed.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..adversarial_losses import GAN_LOSSES
from ..lstm import LSTMLanguageModel
from ..relaxed import SCHEDULES, anneal, horizon_of
from ..relaxed_discriminators import LSTMDiscriminator, SoftSeqGANDiscriminator
from .gumbel_gan import GumbelGAN

DISCRIMINATORS = ("lstm", "seqgan_cnn")


@dataclass(frozen=True)
class GSGANSettings:
    tau_start: float = 5.0         # this project's choice (the paper's values are unverified)
    tau_end: float = 1.0
    schedule: str = "exp"          # the shapes of seqgan_core.relaxed.anneal
    anneal_steps: int | None = None  # None: the run's length
    loss: str = "standard"         # the standard GAN loss (non-saturating G); "js" is the minimax G loss
    discriminator: str = "lstm"    # paper; "seqgan_cnn": the pipeline's pretrained CNN
    d_emb_dim: int = 64            # LSTM discriminator's embedding and hidden sizes
    d_hidden: int = 32

    def __post_init__(self) -> None:
        for name in ("tau_start", "tau_end"):
            if not getattr(self, name) > 0.0:
                raise ValueError(f"gsgan.{name} = {getattr(self, name)}: a temperature must be > 0")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"gsgan.schedule = {self.schedule!r}: must be one of {SCHEDULES}")
        if self.anneal_steps is not None and self.anneal_steps < 1:
            raise ValueError(f"gsgan.anneal_steps = {self.anneal_steps}: must be >= 1, or None for the run's length")
        if self.loss not in GAN_LOSSES:
            raise ValueError(f"gsgan.loss = {self.loss!r}: must be one of {GAN_LOSSES}")
        if self.discriminator not in DISCRIMINATORS:
            raise ValueError(f"gsgan.discriminator = {self.discriminator!r}: must be one of {DISCRIMINATORS}")
        if self.d_emb_dim < 1 or self.d_hidden < 1:
            raise ValueError(f"gsgan.d_emb_dim = {self.d_emb_dim}, d_hidden = {self.d_hidden}: both must be >= 1")


class GSGAN(GumbelGAN):
    name = "gsgan"
    generator_kind = "lstm"
    Settings = GSGANSettings
    feedback = "soft"

    def __init__(self, generator: LSTMLanguageModel, discriminator, real: torch.Tensor, settings: GSGANSettings,
                 common, rng: torch.Generator) -> None:
        if not isinstance(generator, LSTMLanguageModel):
            raise ValueError(f"gsgan trains an LSTMLanguageModel, got a {type(generator).__name__}")
        self.settings, self.horizon = settings, horizon_of(settings.anneal_steps, common)
        if settings.discriminator == "lstm":
            trained = LSTMDiscriminator(generator.vocab_size, settings.d_emb_dim, settings.d_hidden, rng=rng)
        else:
            trained = SoftSeqGANDiscriminator(discriminator)
        super().__init__(generator, trained.to(generator.device), real, settings.loss, common, rng)

    def relaxation(self, step: int) -> tuple[float, dict[str, float]]:
        s = self.settings
        tau = anneal(s.tau_start, s.tau_end, step, self.horizon, s.schedule)
        return 1.0 / tau, {"tau": tau}

    def stateful(self) -> dict:
        own = {"gsgan_discriminator": self.discriminator} if self.settings.discriminator == "lstm" else {}
        return {**own, "g_optimizer": self.g_optimizer, "d_optimizer": self.d_optimizer}
