"""Monte-Carlo values of prefixes under LeakGAN's generator, all completions batched.

V(p) = mean over N completions of x_<p by the current generator of D(completion), for
the prefix lengths p the manager's rewards need (`seqgan_core.leakgan.method`). As in
`seqgan_core.rollout`, one teacher-forced pass of the samples provides the state after
every prefix, all completions advance together, and rows are ordered by prefix length
so those still running are a leading slice. Each step reads the leaked feature of every
running completion's prefix (one D call per step for all of them); a completion starts
from the teacher-forced state, so its first step reuses the pass's logits and feature
and samples the N completions of a prefix from one softmax.

The official code re-reads each prefix from the initial state for every rollout, and
its continuation reads the feature of the last given prefix twice (the manager's input
lags one step behind from there on); here a completion continues the very recurrence
that `LeakGANGenerator.sample` runs.
"""
from __future__ import annotations

import torch

from .. import randomness
from ..discriminator import Discriminator
from ..rollout import SequenceReward, score_sequences
from ..sampling import sample_categorical
from .generator import LeakGANGenerator, LeakState, TeacherForced


@torch.no_grad()
def rollout_values(
    generator: LeakGANGenerator,
    discriminator: Discriminator | SequenceReward,
    samples: torch.Tensor,
    passed: TeacherForced,
    prefix_lengths: list[int],
    n_rollouts: int,
    *,
    rng: torch.Generator | None = None,
    d_batch_size: int = 1024,
) -> torch.Tensor:
    """V(p) (B, P) for ``samples`` (B, T) and each prefix length p in ``prefix_lengths``
    (increasing, each in 1..T-1); ``passed`` is ``generator.teacher_forced(samples)``."""
    B, T = samples.shape
    N = n_rollouts
    if N < 1:
        raise ValueError(f"n_rollouts must be >= 1, got {N}")
    if list(prefix_lengths) != sorted(set(prefix_lengths)) or not all(1 <= p < T for p in prefix_lengths):
        raise ValueError(f"prefix lengths must increase within [1, {T - 1}], got {prefix_lengths}")
    if not prefix_lengths:
        return torch.empty(B, 0, device=samples.device)
    block = N * B  # completions per prefix length, ordered (rollout, sequence)
    completions = samples.repeat(N * len(prefix_lengths), 1)
    positions = torch.arange(T, device=samples.device)
    pad = torch.full_like(completions, generator.pad_id)
    state: LeakState | None = None
    running = 0  # completions under way: a leading slice of the rows
    for t in range(prefix_lengths[0], T):
        starting = t in prefix_lengths
        uniforms = randomness.uniform((running + (block if starting else 0),), rng, device=samples.device)
        if running:
            rows = completions[:running]
            logits, state = generator.step(t, rows[:, t - 1], state)
            if t + 1 < T:
                prefixes = torch.where(positions < t, rows, pad[:running])
                state = generator.observe(generator.leaked_features(prefixes), state)
            drawn = sample_categorical(logits, inplace=True, uniforms=uniforms[:running].view(running, 1))
            rows[:, t] = drawn.squeeze(1)
        if starting:
            # Completions of x_<t start here: step t is the pass's own (same prefix), so
            # its softmax is built once per sequence and sampled N times.
            logits = generator.worker_logits(passed.worker[0][:, t], passed.goals[:, t])
            first = sample_categorical(logits, num_samples=N, inplace=True, uniforms=uniforms[running:].view(B, N))
            completions[running : running + block, t] = first.T.reshape(-1)
            new = passed.state_after(t).repeat(N)
            state = new if state is None else LeakState.cat([state, new])
            running += block
    scores = score_sequences(discriminator, completions, d_batch_size).view(len(prefix_lengths), N, B)
    return scores.mean(dim=1).T
