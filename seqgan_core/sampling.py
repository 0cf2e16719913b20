"""Categorical sampling by inverse CDF.

`torch.multinomial` draws one exponential variate per vocabulary entry, which on a
64 x 5000 matrix costs ~13 ms on 2 CPU cores; an inverse-CDF draw (cumulative sum, one
uniform per sample, binary search) costs ~0.26 ms. In SeqGAN almost all generator work
is sampling (rollouts draw ~200k tokens per g-step), so this is the hot path.

What is left is memory-bound passes over the (rows x vocab) weights, so for large
vocabularies the sampler makes as few as it can (2 CPU cores, ns per entry):

* The exponential is unavoidable (every exact draw needs the normaliser), but
  ``exp2`` costs ~0.27 against ``exp``'s ~0.5. `sample_log2_weights` takes logits
  already multiplied by log2(e) / temperature, which the generator folds into its output
  layer for free (2^(l * log2 e) = e^l); `sample_categorical` keeps ``exp``.
* The max shift ``logits - max`` (~0.25) only protects the exponential from overflow.
  When every row's maximum is moderate it is skipped: the weights then differ from the
  shifted ones by one factor per row, so the distribution is the same.
* A full ``cumsum`` (~0.6: a sequential scan per row) is replaced by per-block sums
  (~0.05, vectorised), a cumsum over the few block sums, a search for the block, and a
  cumsum and search inside the one chosen block only.

All paths draw with one uniform per sample, in the same order as a plain inverse-CDF
draw, so a seeded generator consumes the same random numbers; the distribution is
exactly softmax(logits / temperature), and only an id whose CDF boundary lies within
float rounding of its uniform can come out differently from a one-level search.

The uniforms come from `seqgan_core.randomness` (drawn on the generator's device, the
CPU for every stream of this project, then moved), or, from callers that draw many
steps' worth at once to save a host-to-device copy per step, as ``uniforms`` (rows,
num_samples) already on the weights' device; those are overwritten.
"""
from __future__ import annotations

import math

import torch

from . import randomness

LOG2E = math.log2(math.e)
# The lowest temperature any sampler or scorer accepts (serving, the CLI and params.yaml
# refuse lower ones through `check_temperature`). Below ~1e-37 logits / t overflow float32
# and the weights turn into NaN, so sampling returns garbage; long before that it is greedy
# in all but name: at 1e-3 a logit gap of 0.01 already makes the second choice e^10 times
# less likely than the first.
MIN_TEMPERATURE = 1e-3
# Rows whose largest (base-2) log-weight lies within +-_SAFE_EXP2_RANGE are
# exponentiated without the max shift: 2^86 * vocabulary stays far below float32's
# 3.4e38, and a row maximum of at least 2^-86 ~ 1e-26 is a normal float, so no row can
# overflow or vanish.
_SAFE_EXP2_RANGE = 86.0
# Blocked search for vocabularies of at least this many ids (below it one cumsum is cheap).
_MIN_BLOCKED_VOCAB = 1024
_BLOCK = 100
# The second level gathers and scans _BLOCK weights per *sample*; with many samples per
# row (the first step of N rollouts) one full cumsum per row is cheaper.
_BLOCKED_MAX_SHARE = 8


def sample_categorical(
    logits: torch.Tensor,
    num_samples: int = 1,
    *,
    temperature: float = 1.0,
    rng: torch.Generator | None = None,
    inplace: bool = False,
    uniforms: torch.Tensor | None = None,
) -> torch.Tensor:
    """Draw `num_samples` ids per row from softmax(logits / temperature).

    Returns a LongTensor of shape (rows, num_samples). With `inplace=True` the logits
    buffer is reused as scratch space (the caller must not read it afterwards), which
    saves one allocation of rows x vocab floats per call. ``uniforms`` (rows, num_samples),
    if given, are used (and overwritten) instead of drawing from ``rng``.
    """
    check_temperature(temperature)
    weights = logits if inplace else logits.clone()
    if temperature != 1.0:
        weights.div_(temperature)
    if _blocked(weights, num_samples) is None:
        # Unnormalised probabilities: subtracting the row max keeps exp() finite for any logits.
        weights.sub_(weights.amax(dim=-1, keepdim=True)).exp_()
        return _one_level_inverse_cdf(weights, num_samples, rng, uniforms)
    _exp_unnormalised_(weights, torch.Tensor.exp_, _SAFE_EXP2_RANGE / LOG2E)
    return _inverse_cdf(weights, num_samples, rng, uniforms)


def sample_log2_weights(
    log2_weights: torch.Tensor, num_samples: int = 1, *, rng: torch.Generator | None = None,
    uniforms: torch.Tensor | None = None,
) -> torch.Tensor:
    """`sample_categorical(logits, inplace=True, temperature=t)` for the input
    ``logits * log2(e) / t``, drawn with ``exp2``: the same law and the same uniforms.

    The buffer is used as scratch space (the caller must not read it afterwards).
    """
    _exp_unnormalised_(log2_weights, torch.Tensor.exp2_, _SAFE_EXP2_RANGE)
    return _inverse_cdf(log2_weights, num_samples, rng, uniforms)


def place_prefix(out: torch.Tensor, prefix: torch.Tensor | None, vocab_size: int) -> int:
    """Write ``prefix`` (P,) or (n, P) into the first P columns of the (n, T) sample buffer
    ``out`` and return P (0 without a prefix): the tokens a sampler keeps fixed."""
    if prefix is None:
        return 0
    check_tokens(prefix, vocab_size, what="prefix", dims=(1, 2))
    n, seq_len = out.shape
    prefix = prefix.to(out.device)
    prefix = prefix.expand(n, -1) if prefix.dim() == 1 else prefix
    if prefix.shape[1] > seq_len or prefix.shape[0] != n:
        raise ValueError(f"prefix of shape {tuple(prefix.shape)} does not fit {n} x {seq_len}")
    out[:, : prefix.shape[1]] = prefix
    return prefix.shape[1]


def check_temperature(temperature: float) -> None:
    """A temperature is a finite number >= MIN_TEMPERATURE (NaN would pass a plain ``<`` test)."""
    if not (math.isfinite(temperature) and temperature >= MIN_TEMPERATURE):
        raise ValueError(f"temperature must be a finite number >= {MIN_TEMPERATURE:g}, got {temperature!r} "
                         f"(use {MIN_TEMPERATURE:g} for near-greedy sampling)")


def check_tokens(tokens: torch.Tensor, vocab_size: int, *, what: str = "tokens", dims: tuple[int, ...] = (2,)) -> None:
    """TypeError or ValueError, naming ``what`` and the fix, unless ``tokens`` is an integer
    tensor of ``dims`` dimensions whose ids all lie in [0, vocab_size).

    Called at the public entry points that read token ids (scoring, rollouts, prefixes),
    never per step: without it a float tensor, or an id past the vocabulary, ends in an
    IndexError from inside torch's embedding (a device-side assert on CUDA), and a float
    prefix was silently truncated to ids. One min/max pass over the ids."""
    if not isinstance(tokens, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor of token ids, got {type(tokens).__name__} "
                        "(convert it with torch.as_tensor(..., dtype=torch.long))")
    if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
        raise TypeError(f"{what} must hold integer token ids, got {tokens.dtype} (ids are torch.long; "
                        "a float tensor is not a tensor of ids)")
    if tokens.dim() not in dims:
        shapes = " or ".join({1: "(positions,)", 2: "(sequences, positions)"}[d] for d in dims)
        raise ValueError(f"{what} must have shape {shapes}, got {tuple(tokens.shape)}"
                         + (" (one sequence: tokens.unsqueeze(0))" if tokens.dim() == 1 else ""))
    if tokens.numel():
        low, high = torch.aminmax(tokens)
        low, high = int(low), int(high)
        if low < 0 or high >= vocab_size:
            raise ValueError(f"{what} contains ids outside the vocabulary [0, {vocab_size}): smallest {low}, "
                             f"largest {high} (tokens of another vocabulary, or a pad id?)")


def check_finite_weights(model: torch.nn.Module, what: str = "generator") -> None:
    """ValueError naming the first NaN or infinite parameter of ``model``. Called once per
    `sample` and `rollout` call: a NaN weight makes NaN probabilities, and the inverse-CDF
    search then returns the last id of the vocabulary for every row, a plausible-looking
    sample instead of an error. One pass over the parameters, one sync: min and max carry
    any NaN or infinity and allocate nothing (isfinite's boolean copies cost ~9x more)."""
    params = list(model.parameters())
    if params and not bool(torch.isfinite(torch.stack([torch.stack(torch.aminmax(p)) for p in params])).all()):
        name = next(name for name, p in model.named_parameters() if not bool(torch.isfinite(p).all()))
        raise ValueError(f"{what} parameter {name} holds NaN or infinite values, so it cannot sample; "
                         "reload a checkpoint saved before training diverged")


def _blocked(weights: torch.Tensor, num_samples: int) -> bool | None:
    """True for the two-level search, False for one cumsum per row after a cheap
    exponential, None for the plain path (small vocabularies, strided rows)."""
    vocab = weights.shape[-1]
    if vocab < _MIN_BLOCKED_VOCAB or not weights.is_contiguous():
        return None
    return num_samples * _BLOCK * _BLOCKED_MAX_SHARE <= vocab


def _uniforms(weights: torch.Tensor, num_samples: int, rng: torch.Generator | None,
              uniforms: torch.Tensor | None) -> torch.Tensor:
    """One uniform per sample, (rows, num_samples) on the weights' device and in their dtype."""
    shape = (weights.shape[0], num_samples)
    if uniforms is None:
        return randomness.uniform(shape, rng, device=weights.device, dtype=weights.dtype)
    if tuple(uniforms.shape) != shape or uniforms.device != weights.device or uniforms.dtype != weights.dtype:
        raise ValueError(f"uniforms of shape {tuple(uniforms.shape)} ({uniforms.dtype}, {uniforms.device}) do not "
                         f"fit {shape} ({weights.dtype}, {weights.device})")
    return uniforms


def _inverse_cdf(weights: torch.Tensor, num_samples: int, rng: torch.Generator | None,
                 uniforms: torch.Tensor | None = None) -> torch.Tensor:
    if _blocked(weights, num_samples):
        return _blocked_inverse_cdf(weights, num_samples, rng, uniforms)
    return _one_level_inverse_cdf(weights, num_samples, rng, uniforms)


def _one_level_inverse_cdf(weights: torch.Tensor, num_samples: int, rng: torch.Generator | None,
                           uniforms: torch.Tensor | None = None) -> torch.Tensor:
    cdf = torch.cumsum(weights, dim=-1, out=weights)
    uniforms = _uniforms(cdf, num_samples, rng, uniforms)
    uniforms.mul_(cdf[:, -1:])
    # right=True returns the first index whose cdf exceeds u, so a zero-probability id
    # (a flat step of the cdf) can never be drawn, even for u == 0.
    ids = torch.searchsorted(cdf, uniforms, right=True)
    return ids.clamp_(max=cdf.shape[-1] - 1)


def _exp_unnormalised_(weights: torch.Tensor, exp_, safe_range: float) -> None:
    """weights <- exp_(weights - c) in place with c = 0 when every row maximum lies within
    +-safe_range (see _SAFE_EXP2_RANGE), else c = the row maximum: a per-row c leaves the
    distribution as it is."""
    row_max = weights.amax(dim=-1, keepdim=True)
    if not bool((row_max.abs() <= safe_range).all()):  # also catches inf / nan rows
        weights.sub_(row_max)
    exp_(weights)


def _below(x: torch.Tensor) -> torch.Tensor:
    """The largest float strictly below each (positive) entry of x."""
    return torch.nextafter(x, torch.zeros_like(x))


def _blocked_inverse_cdf(weights: torch.Tensor, num_samples: int, rng: torch.Generator | None,
                         uniforms: torch.Tensor | None = None) -> torch.Tensor:
    """Inverse-CDF draws from unnormalised weights (rows, vocab) >= 0, two levels deep.

    Level 1: the vocabulary is cut into blocks of _BLOCK ids (the last one may be short);
    u * total is located among the cumulative block sums. Level 2: the remainder is
    located in the cumulative sum of the chosen block alone. Exactly the ids of a
    one-level inverse CDF up to float rounding, at a fraction of the memory passes.
    """
    rows, vocab = weights.shape
    full = vocab // _BLOCK
    tail = vocab - full * _BLOCK
    sums = weights[:, : full * _BLOCK].view(rows, full, _BLOCK).sum(dim=-1)
    if tail:
        sums = torch.cat([sums, weights[:, full * _BLOCK :].sum(dim=-1, keepdim=True)], dim=1)
    block_cdf = torch.cumsum(sums, dim=1)  # (rows, blocks)
    total = block_cdf[:, -1:]
    uniforms = _uniforms(weights, num_samples, rng, uniforms)
    # u * total < total, guarded against rounding up to total: the first block whose
    # cdf exceeds it (right=True) then always exists and has a positive sum.
    targets = torch.minimum(uniforms.mul_(total), _below(total))
    block = torch.searchsorted(block_cdf, targets, right=True)  # (rows, samples)
    start = torch.where(block > 0, block_cdf.gather(1, (block - 1).clamp_(min=0)), 0.0)
    remainder = targets - start  # >= 0: the block cdf before `block` is <= target

    # The chosen block's weights, (rows, samples, _BLOCK); the short tail block is
    # padded with zero weights, which the search below can never select.
    cols = block.unsqueeze(-1) * _BLOCK + torch.arange(_BLOCK, device=weights.device)
    inside = cols < vocab
    chosen = weights.gather(1, cols.clamp_(max=vocab - 1).flatten(1)).view(rows, num_samples, _BLOCK)
    if tail:
        chosen = chosen * inside
    inner_cdf = torch.cumsum(chosen, dim=-1)
    # The block's own cumulative total can differ from its block sum by rounding: cap the
    # remainder just below it so the search lands on an id with positive weight.
    remainder = torch.minimum(remainder, _below(inner_cdf[..., -1])).unsqueeze(-1)
    offset = torch.searchsorted(inner_cdf, remainder, right=True).squeeze(-1)
    return cols.view(rows, num_samples, _BLOCK).gather(-1, offset.clamp_(max=_BLOCK - 1).unsqueeze(-1)).squeeze(-1)
