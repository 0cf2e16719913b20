"""Training steps: MLE epochs, discriminator rounds, SeqGAN generator updates.

Each function does one well-defined unit of work on models and optimisers it is given
and returns plain-number metrics, so the loops that call them (a notebook, a pipeline
stage) decide what to log and when to checkpoint.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Literal

import torch

from .discriminator import Discriminator
from .lstm import LSTMLanguageModel
from .objectives import mle_loss, policy_gradient_loss
from .rollout import rollout


class TrainingDiverged(FloatingPointError):
    """A loss became NaN or infinite."""

    def __init__(self, what: str, value: float) -> None:
        super().__init__(
            f"{what} became {value}: training diverged. Lower the learning rate, keep gradient "
            "clipping on (grad_clip > 0), or, for policy gradient, use reduction 'mean' or a baseline; "
            "the last good checkpoint is kept."
        )


def check_finite(what: str, value: float) -> float:
    if not math.isfinite(value):
        raise TrainingDiverged(what, value)
    return value


def minibatches(data: torch.Tensor, batch_size: int, rng: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """Shuffled mini-batches of whole ``batch_size``; a final partial batch is dropped,
    as the authors' data loader does (10,000 sequences -> 156 batches of 64)."""
    order = torch.randperm(data.shape[0], generator=rng)
    for start in range(0, data.shape[0] - batch_size + 1, batch_size):
        yield data[order[start : start + batch_size]]


def _apply(optimizer: torch.optim.Optimizer, loss: torch.Tensor, params, grad_clip: float, what: str) -> float:
    """Check the loss, backpropagate, clip and step. A non-finite loss or gradient raises
    before the optimiser moves, so the model in memory is still the last good one."""
    value = check_finite(what, loss.item())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    # Global-norm clipping over all parameters, like TF's clip_by_global_norm.
    norm = torch.nn.utils.clip_grad_norm_(params, grad_clip if grad_clip > 0 else float("inf"))
    check_finite(f"{what} gradient norm", norm.item())
    optimizer.step()
    return value


def mle_epoch(
    generator: LSTMLanguageModel,
    optimizer: torch.optim.Optimizer,
    data: torch.Tensor,
    *,
    batch_size: int = 64,
    grad_clip: float = 5.0,
    rng: torch.Generator | None = None,
) -> float:
    """One pass of teacher-forced MLE over ``data`` (n, T); returns the mean training NLL."""
    generator.train()
    total, batches = 0.0, 0
    for batch in minibatches(data, batch_size, rng):
        loss = mle_loss(generator, batch.to(generator.device))
        total += _apply(optimizer, loss, list(generator.parameters()), grad_clip, "MLE loss")
        batches += 1
    if batches == 0:
        raise ValueError(f"{data.shape[0]} sequences do not fill one batch of {batch_size}")
    return total / batches


def discriminator_round(
    discriminator: Discriminator,
    optimizer: torch.optim.Optimizer,
    positives: torch.Tensor,
    negatives: torch.Tensor,
    *,
    epochs: int = 3,
    batch_size: int = 64,
    rng: torch.Generator | None = None,
) -> dict[str, float]:
    """Train D for ``epochs`` passes over real (label 1) and generated (label 0) sequences.

    The caller draws fresh ``negatives`` for every round, as the paper does. Returns the
    mean loss and the accuracy of the last epoch.
    """
    device = discriminator.out.weight.device
    tokens = torch.cat([positives, negatives]).to(device)
    labels = torch.cat([torch.ones(len(positives)), torch.zeros(len(negatives))]).long().to(device)
    dataset = torch.cat([tokens, labels.unsqueeze(1)], dim=1)  # shuffle tokens and labels together
    discriminator.train()
    for _ in range(epochs):
        total, correct, seen = 0.0, 0, 0
        for batch in minibatches(dataset, batch_size, rng):
            x, y = batch[:, :-1], batch[:, -1]
            logits = discriminator(x)
            loss = discriminator.loss_from_logits(logits, y)
            total += _apply(optimizer, loss, list(discriminator.parameters()), 0.0, "discriminator loss") * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
    return {"d_loss": total / seen, "d_accuracy": correct / seen}


def policy_gradient_step(
    generator: LSTMLanguageModel,
    optimizer: torch.optim.Optimizer,
    samples: torch.Tensor,
    rewards: torch.Tensor,
    *,
    reduction: str = "sum",
    baseline: float | None = None,
    grad_clip: float = 5.0,
) -> float:
    """One REINFORCE update of the generator on its own ``samples`` with per-token ``rewards``."""
    generator.train()
    loss = policy_gradient_loss(generator.token_log_probs(samples), rewards, reduction=reduction, baseline=baseline)
    return _apply(optimizer, loss, list(generator.parameters()), grad_clip, "policy-gradient loss")


def seqgan_generator_step(
    generator: LSTMLanguageModel,
    discriminator: Discriminator,
    optimizer: torch.optim.Optimizer,
    *,
    batch_size: int = 64,
    n_rollouts: int = 16,
    rollout_policy: LSTMLanguageModel | None = None,
    reduction: str = "sum",
    baseline: float | Literal["batch_mean"] | None = None,
    grad_clip: float = 5.0,
    rng: torch.Generator | None = None,
) -> dict[str, float]:
    """SeqGAN's g-step: sample a batch, reward every token by rollout, update by policy gradient.

    ``baseline="batch_mean"`` subtracts the batch's mean reward (a variance-reduction
    departure from the paper, which uses none).
    """
    samples = generator.sample(batch_size, rng=rng)
    rewards = rollout(rollout_policy or generator, discriminator, samples, n_rollouts, rng=rng)
    if baseline == "batch_mean":
        baseline = rewards.mean().item()
    loss = policy_gradient_step(
        generator, optimizer, samples, rewards, reduction=reduction, baseline=baseline, grad_clip=grad_clip
    )
    return {"g_loss": loss, "mean_reward": rewards.mean().item(), "final_reward": rewards[:, -1].mean().item()}
