"""LeakGAN's training pieces shared by its interleaved pretraining and its adversarial
method (`seqgan_core.methods.leakgan`): the two generator optimisers, one pretraining
epoch, one discriminator pass, and the official code's softmax sharpening.

The official synthetic code (``Synthetic Data/Main.py``, L = 20) pretrains in 10 rounds
of (5 D passes, each on 10,000 fresh negatives and as many real sequences for 3 epochs;
then 8 generator epochs), the generator reading the D of the last pass; then 800
adversarial iterations of (1 generator update on 64 samples; 5 D passes). The pipeline
runs that schedule from params (`pipelines.stages.pretrain_generator`, section
``pretrain_generator.leakgan``; the paper profile holds the code's numbers).

The generator reads the CURRENT discriminator: it owns a copy of D (`feature_extractor`)
that `discriminator_pass` refreshes from D (`LeakGANGenerator.sync_features`) before it
samples and after it trains, where the code shares D's variables. The generator's
optimisers hold the manager's and the worker's parameters only, and D's features are
computed without autograd, so no generator loss reaches D.
"""
from __future__ import annotations

from typing import Any, Literal, NamedTuple

import torch

from ..discriminator import Discriminator
from ..train import _apply, adam, check_finite, discriminator_round, minibatches
from .generator import LeakGANGenerator
from .objectives import Reduction, manager_goals, manager_loss, manager_starts

# The official code multiplies the worker's logits by 1.5 when it samples for evaluation
# and for D's negatives (``train=0``), and on the first two steps of its training
# samples; the author calls it "a trick in the early version" (Texygen#19): it lowers
# NLL-oracle. Report it only as a labelled second figure (`sharpened_samples`).
CODE_SHARPENING = 1.5
TemperatureTrick = Literal["none", "code"]


def code_temperatures(seq_len: int, train: bool) -> list[float]:
    """The official code's sampling temperatures per position: 1/1.5 on the first two
    steps of training samples (``train=1``) and on every step otherwise."""
    sharp = 1.0 / CODE_SHARPENING
    return [sharp if (t < 2 or not train) else 1.0 for t in range(seq_len)]


def sharpened_samples(generator: LeakGANGenerator, n: int, *, rng: torch.Generator | None = None) -> torch.Tensor:
    """Samples as the official evaluation draws them (softmax(1.5 * logits)): for the
    labelled second NLL-oracle figure only. Its NLL-test twin is
    ``generator.token_log_probs(tokens, temperature=1 / CODE_SHARPENING)``."""
    return generator.sample(n, rng=rng, temperature=1.0 / CODE_SHARPENING)


class GeneratorOptimizers(NamedTuple):
    """The manager's Adam (goal_init included) and the worker's (W_psi included), as in
    the code; neither holds the leaked feature extractor. Saved and restored as one."""
    manager: torch.optim.Optimizer
    worker: torch.optim.Optimizer

    def state_dict(self) -> dict[str, Any]:
        return {"manager": self.manager.state_dict(), "worker": self.worker.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.manager.load_state_dict(state["manager"])
        self.worker.load_state_dict(state["worker"])


def generator_optimizers(generator: LeakGANGenerator, lr: float) -> GeneratorOptimizers:
    return GeneratorOptimizers(adam(generator.manager_parameters(), lr), adam(generator.worker_parameters(), lr))


def update(generator: LeakGANGenerator, optimizers: GeneratorOptimizers, manager: torch.Tensor,
           worker: torch.Tensor, grad_clip: float) -> tuple[float, float]:
    """Step manager and worker on their losses (disjoint graphs: the worker's goal is
    detached), each clipped to its own global norm. Both losses are checked first, so a
    non-finite one leaves both halves as they were."""
    check_finite("LeakGAN manager loss", manager.item())
    check_finite("LeakGAN worker loss", worker.item())
    m = _apply(optimizers.manager, manager, generator.manager_parameters(), grad_clip, "LeakGAN manager loss")
    w = _apply(optimizers.worker, worker, generator.worker_parameters(), grad_clip, "LeakGAN worker loss")
    return m, w


def pretrain_generator_epoch(generator: LeakGANGenerator, optimizers: GeneratorOptimizers, real: torch.Tensor, *,
                             batch_size: int = 64, grad_clip: float = 5.0, reduction: Reduction = "per_element",
                             rng: torch.Generator | None = None) -> dict[str, float]:
    """One pretraining epoch over ``real`` (n, T): per batch, the manager's goal loss on
    real features (eq. 12: Q = 1) and the worker's MLE, each stepped. The generator
    reads its feature extractor as it is (a D pass syncs it)."""
    totals, batches = [0.0, 0.0], 0
    starts = manager_starts(generator.seq_len, generator.step_size, generator.goal_window)
    generator.train()
    for batch in minibatches(real.to(generator.device), batch_size, rng):
        passed = generator.teacher_forced(batch)
        goals = manager_goals(passed.subgoals, passed.goals, starts, generator.goal_window)
        m_loss = manager_loss(passed.features, goals, starts, generator.step_size, reduction=reduction)
        nll = -generator.log_probs_of(passed.worker[0], passed.goals, batch).mean()
        for i, value in enumerate(update(generator, optimizers, m_loss, nll, grad_clip)):
            totals[i] += value
        batches += 1
    if batches == 0:
        raise ValueError(f"{real.shape[0]} sequences do not fill one batch of {batch_size}")
    return {"manager_loss": totals[0] / batches, "worker_nll": totals[1] / batches}


def discriminator_pass(generator: LeakGANGenerator, discriminator: Discriminator, optimizer: torch.optim.Optimizer,
                       real: torch.Tensor, *, negatives: int = 10_000, epochs: int = 3, batch_size: int = 64,
                       temperature_trick: TemperatureTrick = "none",
                       rng: torch.Generator | None = None, execution: str = "eager") -> dict[str, float]:
    """One D pass: ``negatives`` fresh samples of the generator (reading the current D)
    against as many real sequences, ``epochs`` epochs; then the generator reads the
    updated D. The pretraining's D passes and the adversarial phase's are the same. (The
    code draws fresh real sequences from the oracle for every pass; here they are a
    fresh subset of the training data, as in every method's D round.) ``execution``: how
    D's steps run (`seqgan_core.execution`)."""
    generator.sync_features(discriminator)
    temperature = code_temperatures(generator.seq_len, train=False) if temperature_trick == "code" else 1.0
    fake = generator.sample(negatives, rng=rng, temperature=temperature)
    metrics = discriminator_round(discriminator, optimizer, real, fake, epochs=epochs, batch_size=batch_size, rng=rng,
                                  execution=execution)
    generator.sync_features(discriminator)
    return metrics
