"""Losses of the generator: MLE, SeqGAN's policy gradient, MaliGAN's importance weights."""
from __future__ import annotations

import torch

from .lstm import LSTMLanguageModel


def mle_loss(generator: LSTMLanguageModel, tokens: torch.Tensor) -> torch.Tensor:
    """Mean per-token negative log-likelihood of ``tokens`` (teacher forcing)."""
    return -generator.token_log_probs(tokens).mean()


def policy_gradient_loss(
    log_probs: torch.Tensor,
    rewards: torch.Tensor,
    *,
    reduction: str = "sum",
    baseline: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """REINFORCE surrogate: -sum_{b,t} log G(y_t | y_<t) * (Q(t) - baseline).

    ``reduction="sum"`` is the authors' code (no normalisation: the effective step grows
    with batch size and length); ``"mean"`` divides by B * T. The paper uses no baseline.
    """
    advantages = rewards if baseline is None else rewards - baseline
    surrogate = -(log_probs * advantages.detach())
    if reduction == "sum":
        return surrogate.sum()
    if reduction == "mean":
        return surrogate.mean()
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")


def maligan_weights(d_probs: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """MaliGAN's normalised importance weights w_i = r(x_i) / sum_j r(x_j), r = D / (1 - D).

    D/(1-D) estimates p_data/p_G when D is optimal; using D itself (a bug in some ports)
    is a different estimator. D is clipped to [eps, 1 - eps] so r stays finite.
    """
    d = d_probs.clamp(eps, 1.0 - eps)
    ratio = d / (1.0 - d)
    return ratio / ratio.sum()
