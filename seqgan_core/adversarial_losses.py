"""Losses of the continuous-relaxation GANs on discriminator logits, and TextGAN's MMD.

`discriminator_loss` / `generator_loss` are RelGAN's `get_losses` family (official code,
`oracle/oracle_gan/oracle_train.py`), on logits of real (r) and generated (f) inputs of
the same shape; means over every element, pairs taken elementwise where they are paired:

  kind       discriminator minimises                     generator minimises
  rsgan      -log sigmoid(r - f)                          -log sigmoid(f - r)     (RelGAN's choice)
  standard   -log sigmoid(r) - log(1 - sigmoid(f))        -log sigmoid(f)         (non-saturating)
  js         as standard                                  log(1 - sigmoid(f))     (the minimax game)
  kl         as standard                                  -f
  hinge      relu(1 - r) + relu(1 + f)                    -f
  tv         tanh(f) - tanh(r)                            -tanh(f)
  ls         (r - 1)^2 + f^2                              (f - 1)^2

(-log sigmoid(x) = softplus(-x), -log(1 - sigmoid(x)) = softplus(x).) The code's
"wgan-gp" is not offered: its gradient penalty reads a `reg_param` that the official
`run.py` never defines, so that option cannot run there either.
"""
from __future__ import annotations

import typing
from typing import Literal

import torch
import torch.nn.functional as F

GANLoss = Literal["rsgan", "standard", "js", "kl", "hinge", "tv", "ls"]
GAN_LOSSES: tuple[str, ...] = typing.get_args(GANLoss)
MMDKernel = Literal["gaussian", "mixture"]
MMD_KERNELS: tuple[str, ...] = typing.get_args(MMDKernel)
# Texygen's TextGAN-MMD kernel: a sum of Gaussians exp(-d^2 / (2 s)), s used as a variance.
MIXTURE_VARIANCES = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 5, 10, 15, 20, 25, 30, 35, 100, 1e3, 1e4, 1e5, 1e6)


def _check(kind: str) -> None:
    if kind not in GAN_LOSSES:
        raise ValueError(f"GAN loss must be one of {GAN_LOSSES}, got {kind!r}")


def discriminator_loss(kind: GANLoss, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    _check(kind)
    if kind == "rsgan":
        return F.softplus(fake - real).mean()
    if kind in ("standard", "js", "kl"):
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "hinge":
        return torch.relu(1.0 - real).mean() + torch.relu(1.0 + fake).mean()
    if kind == "tv":
        return torch.tanh(fake).mean() - torch.tanh(real).mean()
    return (real - 1.0).square().mean() + fake.square().mean()  # ls


def generator_loss(kind: GANLoss, real: torch.Tensor | None, fake: torch.Tensor) -> torch.Tensor:
    """The generator's loss; ``real`` logits are read by "rsgan" only (None otherwise)."""
    _check(kind)
    if kind == "rsgan":
        if real is None:
            raise ValueError("the relativistic loss compares with real logits; got none")
        return F.softplus(real - fake).mean()
    if kind == "standard":
        return F.softplus(-fake).mean()
    if kind == "js":
        return -F.softplus(fake).mean()
    if kind in ("kl", "hinge"):
        return -fake.mean()
    if kind == "tv":
        return -torch.tanh(fake).mean()
    return (fake - 1.0).square().mean()  # ls


def squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """||x_i - y_j||^2 (n, m) by the Gram expansion (no square root: a finite gradient at 0)."""
    return (x.square().sum(1, keepdim=True) + y.square().sum(1) - 2.0 * x @ y.T).clamp_min(0.0)


def mmd2(x: torch.Tensor, y: torch.Tensor, variances: tuple[float, ...]) -> torch.Tensor:
    """Biased (V-statistic) MMD^2 between samples x (n, d) and y (m, d) under the kernel
    k(a, b) = sum_v exp(-||a - b||^2 / (2 v)):

        mean k(x, x') + mean k(y, y') - 2 mean k(x, y),   diagonal terms included,

    as both the TextGAN authors' code and Texygen estimate it. Never negative in exact
    arithmetic; rounding below 0 is clamped (as Texygen does).
    """
    def k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        d2 = squared_distances(a, b)
        return sum(torch.exp(-d2 / (2.0 * v)) for v in variances).mean()

    return (k(x, x) + k(y, y) - 2.0 * k(x, y)).clamp_min(0.0)


def kernel_variances(kernel: MMDKernel, sigma: float) -> tuple[float, ...]:
    """The variances of `mmd2`'s kernel: "gaussian" one Gaussian of bandwidth ``sigma``
    (the authors' sigma_range [20]); "mixture" Texygen's 19 (``sigma`` unused)."""
    if kernel == "gaussian":
        return (sigma**2,)
    if kernel == "mixture":
        return MIXTURE_VARIANCES
    raise ValueError(f"MMD kernel must be one of {MMD_KERNELS}, got {kernel!r}")
