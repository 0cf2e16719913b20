"""TextGAN (Zhang et al., ICML 2017): adversarial feature matching. The generator matches
the discriminator's features of real sentences in MMD; the discriminator classifies,
keeps the features apart and reconstructs the generator's noise.

Generator path: z ~ U(-1, 1)^z_dim sets the LSTM's initial state h0 = tanh(z C0) (c0 = 0);
the LSTM is unrolled on its soft-argmax outputs p_t = softmax(L o_t), L = 1,000, feeding
back p_t @ embedding, so the whole path is differentiable; D reads the p_t rows through its
embedding matrix, real sentences as exact one-hots. Losses, with f the discriminator's
features (the SeqGAN CNN's highway outputs) and MMD^2 the biased estimate of
`adversarial_losses.mmd2`:

  generator      minimises  MMD^2(f(real), f(fake))
  discriminator  minimises  BCE(D(real), 1) + BCE(D(fake), 0) - lambda_m MMD^2 + lambda_r recon,
                 recon = mean (z_hat - z)^2,  z_hat = tanh(W f(fake) + b)

i.e. D maximises L_GAN - lambda_r L_recon + lambda_m MMD^2 as in the paper. (Texygen's port
flips both signs: its D minimises MMD and maximises the reconstruction error. TextBox's
port computes the generator's loss on samples drawn under no_grad, so its generator gets
no adversarial gradient.) One G step and one D step per adversarial step, the authors'
ratio (dg_ratio 1); their Adam rates, lr_g 5e-5 and lr_d 1e-4, are the settings ``lr`` and
``d_lr`` (TextGAN's own, not the shared SeqGAN rates).

Named departures and options:
- ``mmd_estimate``: "squared" MMD^2 (paper, default) or "root", its square root, which the
  authors' Theano code uses for both G's loss and D's term;
- ``mmd_kernel``: "gaussian" with bandwidth ``mmd_sigma`` (the authors' 20, for their
  900-d tanh features; the SeqGAN CNN's 1,720 highway features are on another scale, so
  sigma deserves a sweep) or "mixture", Texygen's sum of 19 Gaussians;
- ``recon_loss``: "squared" ||z_hat - z||^2 (paper) or "bce", the authors' code's
  cross-entropy between (z_hat + 1) / 2 and (z + 1) / 2 (eps 1e-4); both per element;
- lambda_m = lambda_r = 1e-3 are the authors' code's (the paper's are unverified);
- the discriminator is the pipeline's pretrained SeqGAN CNN, trained in place (its
  L2-penalised cross-entropy is the BCE term), not the authors' 3-width x 300 tanh CNN;
  the reconstruction head is new and trained with it (one loss, one global-norm clip;
  its own Adam at the same rate, which is the same update as one Adam over both);
- z sets h0 only (the authors' code also feeds z into every LSTM step) and C0 has no
  bias, so z = 0 gives h0 = 0: the generator's own initial state, from which `sample()`
  evaluates it (hard draws at temperature 1), is the noise's mean. C0 ~ U(-0.05, 0.05)
  (the authors' initialiser) so the pretrained generator starts near its own behaviour;
- z_dim 900 is the authors' (they tie it to their 900 features); the authors' label
  smoothing (D's output squashed into [0.01, 0.99]) is not offered.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Literal

import torch
from torch import nn

from .. import randomness
from ..adversarial_losses import MMDKernel, kernel_variances, mmd2
from ..relaxed import frozen, one_hot, relaxed_rollout
from ..relaxed_discriminators import SoftSeqGANDiscriminator
from ..train import _apply, adam
from .base import AdversarialMethod
from .settings import Settings, bounded


@dataclasses.dataclass(frozen=True)
class TextGANSettings(Settings):
    soft_argmax_scale: float = bounded(1000.0, gt=0, description="L of softmax(L o_t)")
    z_dim: int = bounded(900, ge=1, description="noise size (the authors' 900)")
    mmd_kernel: MMDKernel = "gaussian"
    mmd_sigma: float = bounded(20.0, gt=0, description="the Gaussian kernel's bandwidth")
    mmd_estimate: Literal["squared", "root"] = "squared"
    lambda_mmd: float = bounded(1e-3, ge=0, description="weight of MMD^2 in D's loss")
    lambda_recon: float = bounded(1e-3, ge=0, description="weight of z's reconstruction in D's loss")
    recon_loss: Literal["squared", "bce"] = "squared"
    lr: float = bounded(5e-5, gt=0, description="generator Adam learning rate (the authors')")
    d_lr: float = bounded(1e-4, gt=0, description="discriminator Adam learning rate (the authors')")


def _uniform_linear(n_in: int, n_out: int, *, bias: bool, rng: torch.Generator) -> nn.Linear:
    """A linear map with weights ~ U(-0.05, 0.05) from ``rng`` and a zero bias, built on the
    meta device first so that construction draws nothing from torch's global generator."""
    layer = nn.Linear(n_in, n_out, bias=bias, device="meta").to_empty(device="cpu")
    with torch.no_grad():
        randomness.uniform_(layer.weight, -0.05, 0.05, rng)
        if bias:
            layer.bias.zero_()
    return layer


class TextGAN(AdversarialMethod):
    """`textgan`: see the module docstring."""

    name = "textgan"
    trains_discriminator = True
    Settings = TextGANSettings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        s, g, d = self.settings, self.generator, self.discriminator
        self.relaxed_discriminator = SoftSeqGANDiscriminator(d)
        self.variances = kernel_variances(s.mmd_kernel, s.mmd_sigma)
        # The authors' initialiser: U(-0.05, 0.05) weights, zero biases.
        self.z_to_state = _uniform_linear(s.z_dim, g.hidden_dim, bias=False, rng=self.rng).to(g.device)
        self.reconstruction = _uniform_linear(d.out.in_features, s.z_dim, bias=True, rng=self.rng).to(g.device)
        self.g_optimizer = adam(self.generator_parameters(), self.generator_lr())
        self.recon_optimizer = adam(self.reconstruction.parameters(), self.discriminator_lr())

    def generator_lr(self) -> float:
        return self.settings.lr

    def discriminator_lr(self) -> float:
        return self.settings.d_lr

    def generator_parameters(self) -> list[nn.Parameter]:
        return [*self.generator.parameters(), *self.z_to_state.parameters()]

    def _fake(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise z (B, z_dim) and the soft-argmax rows (B, T, V) generated from it."""
        g = self.generator
        z = randomness.uniform((self.common.batch_size, self.settings.z_dim), self.rng, device=g.device).mul_(2).sub_(1)
        h0 = torch.tanh(self.z_to_state(z))
        rows = relaxed_rollout(g, len(z), scale=self.settings.soft_argmax_scale, feedback="soft", gumbel=False,
                               state=(h0, torch.zeros_like(h0)))[1]
        return z, rows

    def _real(self) -> torch.Tensor:
        return one_hot(self.real_batch(self.common.batch_size), self.generator.vocab_size)

    def _mmd(self, real_features: torch.Tensor, fake_features: torch.Tensor) -> torch.Tensor:
        value = mmd2(real_features, fake_features, self.variances)
        return value.clamp_min(1e-12).sqrt() if self.settings.mmd_estimate == "root" else value

    def _recon(self, z_hat: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if self.settings.recon_loss == "squared":
            return (z_hat - z).square().mean()
        r, t = (z_hat + 1) / 2, (z + 1) / 2  # the authors' cross-entropy on [0, 1]-rescaled codes
        return -(t * torch.log(r + 1e-4) + (1 - t) * torch.log(1.0001 - r)).mean()

    def generator_step(self, batch: int) -> dict[str, float]:
        self.generator.train()
        self.discriminator.train()
        _, fake = self._fake()
        with frozen(self.relaxed_discriminator) as d:
            fake_features = d.features(fake)
            with torch.no_grad():
                real_features = d.features(self._real())
        loss = self._mmd(real_features, fake_features)
        value = _apply(self.g_optimizer, loss, self.generator_parameters(), self.common.grad_clip,
                       "TextGAN generator loss (MMD)")
        return {"g_loss": value}

    def discriminator_step(self, batch: int) -> dict[str, float]:
        d = self.relaxed_discriminator
        d.train()
        with torch.no_grad():
            z, fake = self._fake()
        real_features, fake_features = d.features(self._real()), d.features(fake)
        logits = d.class_logits(torch.cat([real_features, fake_features]))
        labels = torch.cat([torch.ones(len(real_features)), torch.zeros(len(fake_features))]).long().to(logits.device)
        gan = self.discriminator.loss_from_logits(logits, labels)
        mmd = self._mmd(real_features, fake_features)
        recon = self._recon(torch.tanh(self.reconstruction(fake_features)), z)
        loss = gan - self.settings.lambda_mmd * mmd + self.settings.lambda_recon * recon
        # One loss and one clip over D and its head; D's Adam steps in _apply, the head's after it.
        self.recon_optimizer.zero_grad(set_to_none=True)
        params = [*self.discriminator.parameters(), *self.reconstruction.parameters()]
        value = _apply(self.d_optimizer, loss, params, self.common.grad_clip, "TextGAN discriminator loss")
        self.recon_optimizer.step()
        return {"d_loss": value, "d_gan": gan.item(), "d_mmd": mmd.item(), "d_recon": recon.item()}

    def stateful(self) -> dict[str, Any]:
        return {**super().stateful(), "textgan_z_to_state": self.z_to_state,
                "textgan_reconstruction": self.reconstruction, "recon_optimizer": self.recon_optimizer}
