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

The generator is whatever the pipeline pretrained (params ``generator.kind``): "rmc", the
paper's relational memory (1 slot x 2 heads x 256, embedding 32, pretrained by MLE for
150 epochs with Adam 1e-2 and clip 5), or "lstm", the official code's ``lstm_vanilla``
option. The paper's adversarial phase (the official oracle script and the synthetic
table): 3,000 steps, batch 64, Adam 1e-4 for G and D (``lr``, ``d_lr``: RelGAN's own, not
the shared SeqGAN rates), clip 5 for both (``adversarial.grad_clip``); beta_max 1 at
length 20 and 2 at length 40 (the paper's table; the shipped script's defaults
{2, 5, 10, 100} do not reproduce it, RelGAN#22); 100 or 1,000 on real data. With
beta_max 1 the schedule is constant at 1.

The schedule's N (``anneal_steps``): the paper's formula anneals over the run's
adversarial steps (None, the default: N = ``adversarial.batches``); the official code
hard-codes N = 5,000 while running 3,000 oracle steps, so beta ends at beta_max^0.6 there
(anneal_steps = 5000 reproduces that). The code also lags one step (step n uses
beta_{n-1}; steps 0 and 1 both use 1): here step n uses beta_n.

The pipeline's SeqGAN `Discriminator` is not used: RelGAN trains its own
`MultiRepresentationDiscriminator` from scratch (the official code pretrains no D), built
from the method's stream; it is the method's ``discriminator``.
"""
from __future__ import annotations

import dataclasses

import torch

from ..adversarial_losses import GANLoss
from ..relaxed import Schedule, anneal
from ..relaxed_discriminators import MultiRepresentationDiscriminator
from .gumbel_gan import GumbelGAN
from .settings import Settings, bounded


@dataclasses.dataclass(frozen=True)
class RelGANSettings(Settings):
    beta_max: float = bounded(1.0, ge=1, description="final inverse temperature (paper: 1 at length 20, 2 at 40)")
    schedule: Schedule = "exp"  # the paper; the code's others (constant is its "no")
    anneal_steps: int | None = bounded(None, ge=1, description="the schedule's N; null: the run's length (paper)")
    loss: GANLoss = "rsgan"  # the paper; the code's others
    lr: float = bounded(1e-4, gt=0, description="generator Adam learning rate (the paper's)")
    d_lr: float = bounded(1e-4, gt=0, description="discriminator Adam learning rate (the paper's)")
    d_emb_dim: int = bounded(64, ge=1, description="D's total embedding width")
    num_rep: int = bounded(64, ge=1, description="D's representations (each d_emb_dim / num_rep wide)")
    d_filters: int = bounded(300, ge=1, description="D's filters per height (heights 2, 3, 4, 5)")
    d_dropout: float = bounded(0.25, ge=0, lt=1, description="D's drop probability (the code keeps 0.75)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.d_emb_dim % self.num_rep:
            raise ValueError(f"d_emb_dim = {self.d_emb_dim} must be a multiple of num_rep = {self.num_rep}")


class RelGAN(GumbelGAN):
    """`relgan`: see the module docstring."""

    name = "relgan"
    generator_kinds = ("rmc", "lstm")
    Settings = RelGANSettings
    feedback = "hard"

    def build_discriminator(self, pretrained: torch.nn.Module) -> MultiRepresentationDiscriminator:
        s, g = self.settings, self.generator
        return MultiRepresentationDiscriminator(g.vocab_size, g.seq_len, s.d_emb_dim, s.num_rep,
                                                num_filters=s.d_filters, dropout=s.d_dropout, rng=self.rng).to(g.device)

    def generator_lr(self) -> float:
        return self.settings.lr

    def discriminator_lr(self) -> float:
        return self.settings.d_lr

    def relaxation(self, step: int) -> tuple[float, dict[str, float]]:
        beta = anneal(1.0, self.settings.beta_max, step, self.horizon(), self.settings.schedule)
        return beta, {"beta": beta}
