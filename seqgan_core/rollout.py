"""Monte-Carlo rollout rewards, batched over sequences, rollouts and prefix lengths.

For a sampled sequence y_1..y_T (1-indexed as in the paper) the reward of token t is

    Q(t) = mean over N completions of y_1..y_t of D(completion)   for t < T
    Q(T) = D(y_1..y_T)

The authors' code loops in Python over the N rollouts and the T-1 prefix lengths and
re-reads each prefix from the initial state. Here one teacher-forced pass caches the
state after every prefix, and all B x N x (T-1) completions advance together. Rows are
ordered by prefix length, so the completions still running at any step are a leading
slice of the buffers: the only Python loop is over time steps.

All B x N x T(T-1)/2 uniforms the completions consume are drawn from ``rng`` at once
(on its device, the CPU for this project's streams; see `seqgan_core.randomness`), in
the order the time loop uses them, and moved to the generator's device in one copy.
"""
from __future__ import annotations

import copy
from collections.abc import Callable

import torch

from . import randomness
from .discriminator import Discriminator
from .lstm import LSTMLanguageModel
from .sampling import check_finite_weights, check_tokens


SequenceReward = Callable[[torch.Tensor], torch.Tensor]  # (M, T) token rows -> (M,) rewards


def score_sequences(scorer: Discriminator | SequenceReward, tokens: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Rewards (M,) of complete sequences: P(real) from a discriminator (anything with
    ``prob_real``), or the value of any other reward function (PG-BLEU's BLEU)."""
    if hasattr(scorer, "prob_real"):
        return scorer.prob_real(tokens, batch_size)
    return scorer(tokens)


@torch.no_grad()
def rollout(
    generator: LSTMLanguageModel,
    discriminator: Discriminator | SequenceReward,
    samples: torch.Tensor,
    n_rollouts: int = 16,
    *,
    rng: torch.Generator | None = None,
    temperature: float = 1.0,
    d_batch_size: int = 1024,
) -> torch.Tensor:
    """Rewards Q (B, T) for ``samples`` (B, T): column t-1 is Q(t) in the paper's notation.

    ``discriminator`` scores complete sequences (see `score_sequences`): SeqGAN's D, or a
    reward function such as `seqgan_core.bleu.BLEUReward` for the PG-BLEU baseline.
    ``generator`` is the rollout policy: the generator itself (what the authors' code
    effectively does) or a `DelayedPolicy` copy of it (the paper's beta).
    """
    if not hasattr(generator, "_teacher_forced_states"):  # it reads the LSTM's cached states
        raise TypeError(f"rollout takes an LSTM generator (seqgan_core.Generator, or a DelayedPolicy's .model), got "
                        f"{getattr(generator, 'kind', type(generator).__name__)!r}; LeakGAN has its own rollouts "
                        "(seqgan_core.leakgan.rollout.rollout_values)")
    check_tokens(samples, generator.vocab_size, what="samples")
    check_finite_weights(generator, "rollout policy")
    B, T = samples.shape
    N = n_rollouts
    if N < 1:
        raise ValueError(f"n_rollouts must be >= 1, got {N}")
    samples = samples.to(generator.device)
    rewards = torch.empty(B, T, device=samples.device)
    rewards[:, T - 1] = score_sequences(discriminator, samples, d_batch_size)
    if T == 1:
        return rewards

    # Cached state at step t = state that has read the prefix y_0..y_{t-1} (0-indexed).
    h_prefix, c_prefix = generator._teacher_forced_states(samples)  # (B, T, H) each
    block = N * B  # completions per prefix length, ordered (rollout, sequence)
    rows = (T - 1) * block
    # Row r = (prefix length p - 1) * block + n * B + b starts as a copy of sequence b.
    completions = samples.repeat(N * (T - 1), 1)
    h = torch.empty(rows, generator.hidden_dim, device=samples.device)
    c = torch.empty_like(h)
    # Step t consumes (t - 1) * block uniforms for the running completions, then block for
    # the new ones: block * T(T-1)/2 in all, drawn at once in that order.
    uniforms = randomness.uniform((block * T * (T - 1) // 2,), rng, device=samples.device, dtype=h.dtype)
    used = 0
    for t in range(1, T):
        running = (t - 1) * block  # completions of prefixes shorter than t, already under way
        if running:
            h[:running], c[:running] = generator.advance(completions[:running, t - 1], (h[:running], c[:running]))
            completions[:running, t] = generator.sample_next(
                h[:running], temperature=temperature, uniforms=uniforms[used : used + running].view(running, 1)
            ).squeeze(1)
            used += running
        # Completions of the prefix of length t start here: all N share the cached state,
        # so the softmax is built once per sequence and sampled N times.
        first = generator.sample_next(h_prefix[:, t], num_samples=N, temperature=temperature,
                                      uniforms=uniforms[used : used + block].view(B, N))
        used += block
        new = slice(running, running + block)
        completions[new, t] = first.T.reshape(-1)
        h[new] = h_prefix[:, t].repeat(N, 1)
        c[new] = c_prefix[:, t].repeat(N, 1)

    scores = score_sequences(discriminator, completions, d_batch_size).view(T - 1, N, B)
    rewards[:, : T - 1] = scores.mean(dim=1).T
    return rewards


class DelayedPolicy:
    """The paper's rollout policy beta: a copy of the generator that trails it.

    After each generator update, ``update`` moves beta towards the generator:
    beta <- rate * beta + (1 - rate) * theta (rate 0.8 in the authors' code, where a
    bug makes the copy track the generator exactly; rate 0 reproduces that behaviour).
    """

    def __init__(self, generator: LSTMLanguageModel, rate: float = 0.8) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"delayed rollout rate must be in [0, 1], got {rate}")
        self.rate = rate
        self.model = copy.deepcopy(generator).requires_grad_(False)

    @torch.no_grad()
    def update(self, generator: LSTMLanguageModel) -> None:
        for beta, theta in zip(self.model.parameters(), generator.parameters()):
            beta.lerp_(theta, 1.0 - self.rate)
