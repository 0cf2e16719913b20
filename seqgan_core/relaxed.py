"""The continuous-relaxation family's shared machinery: generated sequences as (relaxed)
one-hot rows a discriminator can differentiate through, and the schedules of their
temperature.

RelGAN, GSGAN and TextGAN give the discriminator, for every generated position, a
probability vector over the vocabulary instead of a token, and the discriminator reads
real sequences as exact one-hots through the same embedding (one-hot @ embedding matrix),
so real and generated inputs differ only in their values (`one_hot`). The generator is
unrolled step by step on its own outputs (`relaxed_rollout`):

    o_t = logits,  g_t ~ Gumbel(0, 1) (or 0),  relaxed_t = softmax(scale * (o_t + g_t))

and reads next either the hard token argmax(o_t + g_t) (RelGAN: an exact sample of
softmax(o_t), fed back without a gradient) or the soft mix relaxed_t @ embedding (GSGAN,
and TextGAN's soft-argmax without noise). The relaxed rows are (B, T, V) floats, ~25 MB
at B 64, T 20, V 5,000: they live for one update and are never returned as metrics.

Generators: `LSTMLanguageModel` (its own cell, fed a soft input embedding) and
`RelationalMemoryGenerator`. What the pipeline evaluates, serves and registers is
always the generator's own `sample()` (hard draws at temperature 1), never these paths.
"""
from __future__ import annotations

import contextlib
import math
import typing
from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from . import randomness
from .lstm import LSTMLanguageModel
from .rmc import RelationalMemoryGenerator

RelaxableGenerator = LSTMLanguageModel | RelationalMemoryGenerator
Feedback = Literal["hard", "soft"]
Schedule = Literal["constant", "lin", "exp", "log", "sigmoid", "quad", "sqrt"]
SCHEDULES: tuple[str, ...] = typing.get_args(Schedule)


def one_hot(tokens: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Exact one-hot rows (B, T, V), float32, on ``tokens``' device: how real data enter a
    relaxed discriminator."""
    return F.one_hot(tokens, vocab_size).float()


def embedded_step(generator: RelaxableGenerator, inputs: torch.Tensor, state) -> tuple[torch.Tensor, object]:
    """One step of ``generator`` reading input embeddings (B, E); returns (logits, state).
    The LSTM's own cell, on ``inputs @ W + b`` instead of a looked-up row."""
    if isinstance(generator, LSTMLanguageModel):
        state = generator._cell(torch.addmm(generator.b, inputs, generator.W), state)
        return generator.output_logits(state[0]), state
    return generator.step_embedded(inputs, state)


def relaxed_rollout(
    generator: RelaxableGenerator,
    n: int,
    *,
    scale: float,
    feedback: Feedback,
    rng: torch.Generator | None = None,
    gumbel: bool = True,
    state=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unroll ``generator`` for ``n`` sequences on its own outputs: (tokens (n, T), relaxed
    one-hots (n, T, V)), the second differentiable with respect to the generator.

    ``scale`` multiplies the perturbed logits inside the softmax: RelGAN's inverse
    temperature beta, GSGAN's 1 / tau, TextGAN's L. ``gumbel``: add Gumbel(0, 1) noise,
    all steps' drawn from ``rng`` at once (T x n x V); without it the tokens are the
    greedy argmax. ``feedback``: "hard" reads the token (no gradient through the choice),
    "soft" reads relaxed_t @ embedding. ``state``: the initial state (TextGAN's z), else
    the generator's own.
    """
    if feedback not in ("hard", "soft"):
        raise ValueError(f"feedback must be 'hard' or 'soft', got {feedback!r}")
    T, V = generator.seq_len, generator.vocab_size
    device = generator.device
    noise = randomness.gumbel((T, n, V), rng, device=device, dtype=generator.embedding.dtype) if gumbel else None
    state = generator.initial_state(n) if state is None else state
    inputs = F.embedding(torch.full((n,), generator.start_token, dtype=torch.long, device=device), generator.embedding)
    tokens, relaxed = [], []
    for t in range(T):
        logits, state = embedded_step(generator, inputs, state)
        perturbed = logits if noise is None else logits + noise[t]
        soft = torch.softmax(perturbed * scale, dim=-1)
        token = perturbed.detach().argmax(dim=-1)
        inputs = soft @ generator.embedding if feedback == "soft" else F.embedding(token, generator.embedding)
        tokens.append(token)
        relaxed.append(soft)
    return torch.stack(tokens, dim=1), torch.stack(relaxed, dim=1)


# ------------------------------------------------------------------- schedules
def anneal(start: float, end: float, step: int, horizon: int, shape: Schedule = "exp") -> float:
    """A value that moves from ``start`` (step 0) to ``end`` (step ``horizon``) by one of
    RelGAN's `get_fixed_temperature` shapes, which the code writes for start = 1 and end
    = beta_max; here with any start (GSGAN's tau falls from high to low):

    constant: end (the code's "no");  lin: start + (end - start) i / (N - 1);
    exp: start (end / start)^(i / N);  log: start + (end - start) ln(i + 1) / ln N;
    sigmoid: start + (end - start) / (1 + exp((N/2 - i) 20 / N));
    quad: start + (end - start) i^2 / (N - 1)^2;  sqrt: start + (end - start) sqrt(i / (N - 1)).

    Past the horizon the value stays at ``end`` (the code asserts the run is no longer
    than N instead), and it never overshoots ``end``.
    """
    if shape not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {shape!r}")
    if horizon < 1 or step < 0:
        raise ValueError(f"need horizon >= 1 and step >= 0, got horizon {horizon}, step {step}")
    i, N, span = min(step, horizon), horizon, end - start
    last = max(N - 1, 1)
    value = {
        "constant": lambda: end,
        "lin": lambda: start + span * i / last,
        "exp": lambda: start * (end / start) ** (i / N),
        "log": lambda: start + span * math.log(i + 1) / math.log(max(N, 2)),
        "sigmoid": lambda: start + span / (1.0 + math.exp((N / 2 - i) * 20 / N)),
        "quad": lambda: start + span * i**2 / last**2,
        "sqrt": lambda: start + span * math.sqrt(i / last),
    }[shape]()
    return min(value, end) if end >= start else max(value, end)


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` with no parameter gradients (inputs still get theirs): the generator's
    update backpropagates through the discriminator without accumulating into it."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)
