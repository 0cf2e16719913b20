"""Training steps: MLE, discriminator rounds, and one generator update per method of
the papers' tables (MLE, scheduled sampling, PG-BLEU, SeqGAN, MaliGAN basic and full).

Each function does one well-defined unit of work on models and optimisers it is given
and returns plain-number metrics, so the loops that call them (a notebook, a pipeline
stage) decide what to log and when to checkpoint. The schedules of scheduled sampling and
of MaliGAN's mixed MLE are plain functions of the update's index.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Literal

import torch

from . import randomness
from .discriminator import Discriminator
from .lstm import LSTMLanguageModel
from .objectives import maligan_loss, mle_loss, policy_gradient_loss, scheduled_sampling_loss
from .rollout import SequenceReward, rollout


class TrainingDiverged(FloatingPointError):
    """Training went numerically wrong: a loss or gradient became NaN or infinite, or a
    weight grew past its bound. The message says what diverged and what to change; what
    is kept on disk is for the caller to say (only it knows its checkpoints)."""


def check_finite(what: str, value: float) -> float:
    if not math.isfinite(value):
        raise TrainingDiverged(
            f"{what} became {value}: training diverged. Lower the learning rate, keep gradient "
            "clipping on (grad_clip > 0), or, for policy gradient, use reduction 'mean' or a baseline."
        )
    return value


def check_weights_bounded(model: torch.nn.Module, max_abs_weight: float, *, what: str = "generator",
                          advice: str = "Lower the learning rate, or raise max_abs_weight if weights this "
                                        "large are intended.") -> None:
    """Raise TrainingDiverged unless every parameter of ``model`` is finite and at most
    ``max_abs_weight`` in absolute value.

    The loss checks cannot see an exploding generator: with too large a policy-gradient
    step (Adam moves each weight by about the learning rate, whatever the gradient) the
    weights grow to ~1e8 while every loss stays finite, and the saturated model samples
    one repeated token loop, which NLL-oracle may even score well. Normal weights are
    O(1)-O(10) (README: "Faithfulness and named departures"), so a bound far above them
    never trips on a healthy run.
    """
    for name, param in model.named_parameters():
        largest = param.detach().abs().max().item()
        if not math.isfinite(largest):
            raise TrainingDiverged(f"{what} weight {name} became {largest}: training diverged. {advice}")
        if largest > max_abs_weight:
            raise TrainingDiverged(
                f"{what} weight {name} reached |w| = {largest:.3g}, above the bound {max_abs_weight:g}: "
                f"training diverged (the {what} is exploding). {advice}"
            )


def adam(parameters, lr: float) -> torch.optim.Adam:
    """Adam as the authors train every model (TF's defaults: betas 0.9/0.999, eps 1e-8),
    in PyTorch's fused form: the same update rule in one pass over each parameter. The
    default (for-each) form allocates parameter-sized temporaries every step, which for
    the discriminator's 7 M parameters costs about a quarter of a D epoch on CPU
    (benchmarks/README.md)."""
    return torch.optim.Adam(parameters, lr=lr, fused=True)


def minibatches(data: torch.Tensor, batch_size: int, rng: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """Shuffled mini-batches of whole ``batch_size``; a final partial batch is dropped,
    as the authors' data loader does (10,000 sequences -> 156 batches of 64). The order is
    drawn on ``rng``'s device (the CPU for every stream of this project) and moved to the
    data's (`seqgan_core.randomness`)."""
    order = randomness.randperm(data.shape[0], rng, device=data.device)
    for start in range(0, data.shape[0] - batch_size + 1, batch_size):
        yield data[order[start : start + batch_size]]


def held_out_size(n: int, fraction: float) -> int:
    """How many of ``n`` rows `hold_out` sets aside: ``fraction`` of them, at least one and
    never all (the params check counts the training rows left with this same rule)."""
    if n < 2:
        raise ValueError(f"cannot hold out a share of {n} sequence(s): at least 2 are needed")
    return min(max(round(n * fraction), 1), n - 1)


def hold_out(data: torch.Tensor, fraction: float, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(rest, held out): a random ``fraction`` of ``data``'s rows (`held_out_size` of them)
    set aside for model selection, the rest kept in their original order."""
    n = data.shape[0]
    held = held_out_size(n, fraction)
    order = randomness.randperm(n, rng, device=data.device)
    keep = torch.ones(n, dtype=torch.bool, device=data.device)
    keep[order[:held]] = False
    return data[keep], data[order[:held]]


def _apply(optimizer: torch.optim.Optimizer, loss: torch.Tensor, params, grad_clip: float, what: str) -> float:
    """Check the loss, backpropagate, clip and step. A non-finite loss or gradient raises
    before the optimiser moves, so the model in memory is still the last good one."""
    value = check_finite(what, loss.item())
    norm = backward_and_clip(optimizer, loss, params, grad_clip)
    check_finite(f"{what} gradient norm", norm.item())
    optimizer.step()
    return value


def backward_and_clip(optimizer: torch.optim.Optimizer, loss: torch.Tensor, params, grad_clip: float) -> torch.Tensor:
    """Fresh gradients of ``loss``, clipped; returns their global norm as a tensor (no host
    sync: `seqgan_core.execution` captures this in a CUDA graph)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:  # global-norm clipping over all parameters, like TF's clip_by_global_norm
        return torch.nn.utils.clip_grad_norm_(params, grad_clip)
    # No clipping: the norm alone, for the finiteness check (clip_grad_norm_ with an infinite
    # bound would still multiply every gradient by 1.0: a pass over D's 7 M parameters).
    return torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])


def mle_step(generator: LSTMLanguageModel, optimizer: torch.optim.Optimizer, batch: torch.Tensor,
             *, grad_clip: float = 5.0) -> float:
    """One teacher-forced MLE update on ``batch`` (B, T); returns its mean NLL."""
    generator.train()
    loss = mle_loss(generator, batch.to(generator.device))
    return _apply(optimizer, loss, list(generator.parameters()), grad_clip, "MLE loss")


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
    total, batches = 0.0, 0
    for batch in minibatches(data, batch_size, rng):
        total += mle_step(generator, optimizer, batch, grad_clip=grad_clip)
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
    execution: str = "eager",
) -> dict[str, float]:
    """Train D for ``epochs`` passes over real (label 1) and generated (label 0) sequences.

    The caller draws fresh ``negatives`` for every round, as the paper does; the classes
    are balanced as `balanced_round` says. Returns the mean loss and the accuracy of the
    last epoch. ``execution`` says how each training step runs: "eager", "cuda_graph",
    "compiled" or "auto" (`seqgan_core.execution`); the results are eager's up to float
    rounding.
    """
    from .execution import discriminator_update  # here, not at the top: it builds on _apply

    discriminator.train()  # first: a captured step baked in the mode, and a D met in eval mode would be re-captured
    update = discriminator_update(discriminator, optimizer, (batch_size, positives.shape[1]), execution)
    return balanced_round(positives, negatives, update, epochs=epochs, batch_size=batch_size, rng=rng,
                          device=discriminator.out.weight.device)


def balanced_round(
    positives: torch.Tensor,
    negatives: torch.Tensor,
    update: Callable[[torch.Tensor, torch.Tensor], tuple[float, float]],
    *,
    epochs: int,
    batch_size: int,
    rng: torch.Generator | None,
    device: torch.device,
) -> dict[str, float]:
    """One round of any real-vs-generated classifier (SeqGAN's D, a prefix D, a per-token
    D, RankGAN's ranker): ``epochs`` passes over shuffled mini-batches of real (label 1)
    and generated (label 0) sequences; ``update(tokens, labels)`` makes one optimiser step
    and returns its loss and how many of the batch it classified correctly.

    The classes are balanced as in the authors' rounds (10,000 of each): when there are
    more real sequences than negatives, a fresh random subset of as many is used each
    round. Returns the mean loss and the accuracy of the last epoch.
    """
    if len(positives) > len(negatives):
        positives = positives[randomness.randperm(len(positives), rng, device=positives.device)[: len(negatives)]]
    # Real data come from the CPU (the stages' datasets), negatives from the generator's device.
    tokens = torch.cat([positives.to(device), negatives.to(device)])
    labels = torch.cat([torch.ones(len(positives)), torch.zeros(len(negatives))]).long().to(device)
    dataset = torch.cat([tokens, labels.unsqueeze(1)], dim=1)  # shuffle tokens and labels together
    for _ in range(epochs):
        total, correct, seen = 0.0, 0, 0
        for batch in minibatches(dataset, batch_size, rng):
            loss, right = update(batch[:, :-1], batch[:, -1])
            total += loss * len(batch)
            correct += right
            seen += len(batch)
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
    discriminator: Discriminator | SequenceReward,
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

    With a `seqgan_core.bleu.BLEUReward` in place of the discriminator (and, as the
    authors did, ``n_rollouts=1``) this is the PG-BLEU baseline. ``baseline="batch_mean"`` subtracts the batch's mean reward (a variance-reduction
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


def teacher_forcing_probability(step: int, *, start: float = 1.0, decay: float = 0.002, floor: float = 0.0) -> float:
    """Scheduled sampling's linear schedule: ``start - decay * step``, never below ``floor``
    (the authors' baseline: from 1.0, 0.002 less per epoch)."""
    return max(floor, start - decay * step)


def scheduled_sampling_step(
    generator: LSTMLanguageModel,
    optimizer: torch.optim.Optimizer,
    batch: torch.Tensor,
    teacher_forcing: float,
    *,
    grad_clip: float = 5.0,
    rng: torch.Generator | None = None,
) -> dict[str, float]:
    """One scheduled-sampling update on real ``batch`` (B, T) (see `scheduled_sampling_loss`)."""
    generator.train()
    loss = scheduled_sampling_loss(generator, batch, teacher_forcing, rng)
    value = _apply(optimizer, loss, list(generator.parameters()), grad_clip, "scheduled-sampling loss")
    return {"g_loss": value, "teacher_forcing": teacher_forcing}


def mixed_mle_prefix_length(step: int, seq_len: int, drop: int) -> int:
    """MaliGAN-full's N at iteration ``step`` (0-based): T - K (step + 1), down to 0.

    The paper's Algorithm 2 sets N <- T once, then starts every iteration with
    N <- N - K, so even the first iteration samples its last K tokens (an N = T batch
    would be plain MLE, with nothing for D to weight). The iteration's D rounds
    (`real_prefix_negatives`) and its generator update use the same N."""
    return max(0, seq_len - drop * (step + 1))


def real_prefix_negatives(generator: LSTMLanguageModel, real: torch.Tensor, n: int, prefix_len: int,
                          *, rng: torch.Generator | None = None) -> torch.Tensor:
    """MaliGAN-full's negatives for D (Algorithm 2): ``n`` real sequences keep their first
    ``prefix_len`` tokens (the iteration's N) and the generator samples the rest, so D
    learns to tell real continuations of a real prefix from sampled ones, which is what
    it then weights in the generator update.

    The rows are a random order of ``real`` (another order after each pass, when ``n``
    exceeds its size), drawn from ``rng`` before the samples. With ``prefix_len`` 0 no
    rows are drawn: the negatives are ``generator.sample(n, rng=rng)``, the free-running
    ones of SeqGAN and MaliGAN-basic.
    """
    if not 0 <= prefix_len <= real.shape[1]:
        raise ValueError(f"prefix_len {prefix_len} is outside [0, {real.shape[1]}], the length of the real sequences")
    if prefix_len == 0:
        return generator.sample(n, rng=rng)
    passes = -(-n // real.shape[0])
    rows = torch.cat([randomness.randperm(real.shape[0], rng) for _ in range(passes)])[:n]
    return generator.sample(n, rng=rng, prefix=real[rows.to(real.device), :prefix_len])


def maligan_generator_step(
    generator: LSTMLanguageModel,
    discriminator: Discriminator,
    optimizer: torch.optim.Optimizer,
    prefixes: torch.Tensor,
    *,
    completions: int,
    baseline: bool = True,
    grad_clip: float = 5.0,
    rng: torch.Generator | None = None,
) -> dict[str, float]:
    """One MaliGAN update: ``completions`` samples continue each row of ``prefixes``
    (G, N); D weights them by D/(1-D) normalised within the prefix's group; the sampled
    part gets the weighted update, the real prefix MLE (see `maligan_loss`).

    MaliGAN-basic is ``prefixes`` of shape (1, 0) with ``completions`` = batch size: one
    group of fresh samples. MaliGAN-full passes real sequences cut to
    `mixed_mle_prefix_length`.
    """
    groups, prefix_len = prefixes.shape
    samples = generator.sample(groups * completions, rng=rng, prefix=prefixes.repeat_interleave(completions, dim=0))
    d_probs = discriminator.prob_real(samples)
    generator.train()
    loss = maligan_loss(generator.token_log_probs(samples), d_probs, group_size=completions,
                        prefix_len=prefix_len, baseline=baseline)
    value = _apply(optimizer, loss, list(generator.parameters()), grad_clip, "MaliGAN loss")
    return {"g_loss": value, "mean_d": d_probs.mean().item(), "prefix_len": float(prefix_len)}
