"""RelGAN (Nie, Narodytska & Patel, ICLR 2019): Gumbel-softmax relaxation with an annealed
inverse temperature, a relational memory generator, a multiple-representation CNN
discriminator and the relativistic standard GAN loss.

One adversarial step n (the pipeline's batch index, 0-based) at inverse temperature
beta_n = `anneal`(1, beta_max, n, N, schedule):

- generator step: unroll G on Gumbel-max tokens argmax(o_t + g_t), fed back hard (exact
  samples of softmax(o_t)); D sees softmax(beta_n (o_t + g_t)) and a fresh real batch
  as exact one-hots; G minimises the loss below, backpropagated through the relaxed rows.
- discriminator step: a fresh fake batch (no gradient to G) and a fresh real batch, one
  update of D. The paper: 1 G step then 5 D steps per adversarial step
  (`adversarial.g_steps` 1, `d_steps` 5).

Paper profile (the official oracle script and the paper's synthetic table): generator
"rmc" (1 slot x 2 heads x 256, embedding 32) pretrained by MLE for 150 epochs with Adam
1e-2 and clip 5; 3,000 adversarial steps, batch 64; Adam 1e-4 for G and D (lr, d_lr),
clip 5 (grad_clip) for both; beta_max 1 at length 20 and 2 at length 40 (the paper's
table; the shipped script's defaults {2, 5, 10, 100} do not reproduce it, RelGAN#22);
100 or 1,000 on real data. With beta_max 1 the schedule is constant at 1.

The schedule's N (`anneal_steps`): the paper's formula anneals over the run's
adversarial steps (None, the default: N = the run's length, ``common.batches``); the
official code hard-codes N = 5,000 while running 3,000 oracle steps, so beta ends at
beta_max^0.6 there (anneal_steps = 5000 reproduces that). The code also lags one step
(step n uses beta_{n-1}; steps 0 and 1 both use 1): here step n uses beta_n.

The pipeline's SeqGAN `Discriminator` is not used: RelGAN trains its own
`MultiRepresentationDiscriminator` from scratch (the official code pretrains no D); it is
`self.discriminator`, saved with the method's state (`stateful`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..adversarial_losses import GAN_LOSSES
from ..lstm import LSTMLanguageModel
from ..relaxed import SCHEDULES, anneal, horizon_of
from ..relaxed_discriminators import MultiRepresentationDiscriminator
from ..rmc import RelationalMemoryGenerator
from .gumbel_gan import GumbelGAN

GENERATORS = {"rmc": RelationalMemoryGenerator, "lstm": LSTMLanguageModel}


@dataclass(frozen=True)
class RelGANSettings:
    generator: str = "rmc"         # "rmc" (paper) or "lstm" (the code's lstm_vanilla): generator.kind
    beta_max: float = 1.0          # paper, synthetic L = 20 (2 at L = 40; 100 / 1000 real data)
    schedule: str = "exp"          # paper; the code's others: constant (its "no"), lin, log, sigmoid, quad, sqrt
    anneal_steps: int | None = None  # None: the run's length (paper); 5000: the official code
    loss: str = "rsgan"            # paper; the code's others: standard, js, kl, hinge, tv, ls
    d_emb_dim: int = 64            # total embedding width of D
    num_rep: int = 64              # representations (width d_emb_dim / num_rep = 1)
    d_filters: int = 300           # filters per height (heights 2, 3, 4, 5)
    d_dropout: float = 0.25        # drop rate (the code keeps 0.75)

    def __post_init__(self) -> None:
        if self.generator not in GENERATORS:
            raise ValueError(f"relgan.generator = {self.generator!r}: must be one of {tuple(GENERATORS)}")
        if not self.beta_max >= 1.0:
            raise ValueError(f"relgan.beta_max = {self.beta_max}: must be >= 1 (the schedule rises from 1)")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"relgan.schedule = {self.schedule!r}: must be one of {SCHEDULES}")
        if self.anneal_steps is not None and self.anneal_steps < 1:
            raise ValueError(f"relgan.anneal_steps = {self.anneal_steps}: must be >= 1, or None for the run's length")
        if self.loss not in GAN_LOSSES:
            raise ValueError(f"relgan.loss = {self.loss!r}: must be one of {GAN_LOSSES}")
        if self.num_rep < 1 or self.d_emb_dim < 1 or self.d_emb_dim % self.num_rep:
            raise ValueError(f"relgan.d_emb_dim = {self.d_emb_dim}, num_rep = {self.num_rep}: both >= 1 and "
                             "d_emb_dim a multiple of num_rep")
        if self.d_filters < 1:
            raise ValueError(f"relgan.d_filters = {self.d_filters}: must be >= 1")
        if not 0.0 <= self.d_dropout < 1.0:
            raise ValueError(f"relgan.d_dropout = {self.d_dropout}: a drop rate in [0, 1)")


class RelGAN(GumbelGAN):
    name = "relgan"
    generator_kind = "rmc"  # or "lstm": RelGANSettings.generator says which (the lead maps it)
    Settings = RelGANSettings
    feedback = "hard"

    def __init__(self, generator, discriminator, real: torch.Tensor, settings: RelGANSettings, common,
                 rng: torch.Generator) -> None:
        expected = GENERATORS[settings.generator]
        if not isinstance(generator, expected):
            raise ValueError(f"relgan.generator = {settings.generator!r} needs a {expected.__name__}, "
                             f"got a {type(generator).__name__}")
        del discriminator  # RelGAN trains its own (see the module docstring)
        self.settings, self.horizon = settings, horizon_of(settings.anneal_steps, common)
        own = MultiRepresentationDiscriminator(
            generator.vocab_size, generator.seq_len, settings.d_emb_dim, settings.num_rep,
            num_filters=settings.d_filters, dropout=settings.d_dropout, rng=rng,
        )
        super().__init__(generator, own.to(generator.device), real, settings.loss, common, rng)

    def relaxation(self, step: int) -> tuple[float, dict[str, float]]:
        beta = anneal(1.0, self.settings.beta_max, step, self.horizon, self.settings.schedule)
        return beta, {"beta": beta}

    def stateful(self) -> dict:
        return {"relgan_discriminator": self.discriminator, "g_optimizer": self.g_optimizer,
                "d_optimizer": self.d_optimizer}
