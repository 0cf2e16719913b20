"""LeakGAN's training: the adversarial method (`LeakGAN`), its interleaved pretraining
(`discriminator_pass`, `pretrain_generator_epoch`) and the schedule of the
official synthetic code (`SYNTHETIC_SCHEDULE`).

One adversarial generator update (`LeakGAN.generator_step`), after the paper:

1. sample B sequences; one teacher-forced pass gives every f_t, g_t, G_t and state;
2. the manager's rewards: for each manager term t (`manager_starts`), the value of the
   prefix the goal led to, Q_t = V(t + c): N rollouts of x_<(t+c) scored by D, and
   V(T) = D(x); then the bootstrapped rescaled activation per term across the batch,
   from a real ranking of the values;
3. manager loss -mean Q_t cos(f_{t+c} - f_t, goal_t), worker loss -mean r^I_u log pi(x_u)
   with the intrinsic reward of `intrinsic_rewards` (D's score does not reach the
   worker); each with its own Adam and global-norm clip, as in the code.

With the paper's sliding goal there is a manager term at every step (its reward matrix
is B x T: MC at prefix lengths c..T-1, 16 rollout points at T = 20); with the code's
segment goal one per segment (MC at c, 2c, ..., T-c: the code's ``get_reward``, 4
points), about 3x fewer rollout tokens at T = 20.

The generator reads the CURRENT discriminator: it owns a copy of D (`feature_extractor`)
that every function here refreshes from D (`LeakGANGenerator.sync_features`) before the
generator runs and after each D pass, where the code shares D's variables. The
generator's optimisers hold the manager's and the worker's parameters only, and D's
features are computed without autograd, so no generator loss reaches D.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch

from ..discriminator import Discriminator
from ..train import _apply, adam, check_finite, discriminator_round, minibatches
from .generator import LeakGANGenerator
from .objectives import (RANK_ORDERS, REDUCTIONS, RankOrder, Reduction, intrinsic_rewards, manager_goals, manager_loss,
                         manager_starts, rescaled_activation, worker_loss)
from .rollout import rollout_values

# The official code multiplies the worker's logits by 1.5 when it samples for evaluation
# and for D's negatives (``train=0``), and on the first two steps of its training
# samples; the author calls it "a trick in the early version" (Texygen#19): it lowers
# NLL-oracle. Report it only as a labelled second figure: `sharpened_samples`.
CODE_SHARPENING = 1.5
TemperatureTrick = Literal["none", "code"]
TEMPERATURE_TRICKS = ("none", "code")


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


@dataclass(frozen=True)
class Schedule:
    """The official synthetic code's schedule (``Synthetic Data/Main.py``, L = 20).

    Pretraining, interleaved: ``pretrain_rounds`` x (``pretrain_d_passes`` D passes, each
    on ``d_negatives`` fresh negatives for ``d_epochs`` epochs; then ``pretrain_g_epochs``
    MLE epochs of manager and worker). Adversarial: ``adversarial_iterations`` x (one
    generator update on ``batch_size`` samples; ``adversarial_d_passes`` D passes), with
    NLL-oracle every ``eval_every`` iterations on ``eval_samples`` samples. No MLE
    during the adversarial phase (the COCO code adds a short epoch every 10)."""
    pretrain_rounds: int = 10
    pretrain_d_passes: int = 5
    pretrain_g_epochs: int = 8
    d_epochs: int = 3
    d_negatives: int = 10_000
    batch_size: int = 64
    adversarial_iterations: int = 800
    adversarial_d_passes: int = 5
    eval_every: int = 5
    eval_samples: int = 10_000


SYNTHETIC_SCHEDULE = Schedule()


@dataclass(frozen=True)
class LeakGANSettings:
    """LeakGAN's own hyperparameters; defaults are the paper's synthetic setting (L = 20).

    LeakGAN reads its learning rates and rollout count here, not from the shared
    ``common`` values, which are SeqGAN's (Adam 1e-2 and 16 rollouts there).

    - ``lr``: Adam for manager and worker, each (code: 0.0015 at L = 20, 0.0005 at L = 40;
      its ``No Temperature/`` version 0.01)
    - ``d_lr``: D's Adam (code: 5e-5)
    - ``n_rollouts``: completions per prefix for the manager's Q (code: 4)
    - ``rescale_delta``: delta of the rescaled activation (code: 16)
    - ``rank_order``: "score" (paper: rank by D's values) or "first_appearance" (the
      code's dictionary order, uncorrelated with D: reproduces LeakGAN#17)
    - ``cosine_reduction``: "per_element" (paper) or "batch_mean" (code; see objectives)
    - ``temperature_trick``: "none" (the model's own softmax; the author's fixed
      ``No Temperature/`` code) or "code" (1.5-sharpened training samples on the first two
      steps and sharpened D negatives, `code_temperatures`)
    - ``mle_every``: an MLE epoch after every this many generator updates (0: none, as in
      the synthetic code; the paper's "interleaved training" frequency is not recorded)

    The code divides the rescaled rewards by the rollout count; a constant factor of the
    manager loss, which Adam's update does not see, so it is left out.
    """
    lr: float = 1.5e-3
    d_lr: float = 5e-5
    n_rollouts: int = 4
    rescale_delta: float = 16.0
    rank_order: RankOrder = "score"
    cosine_reduction: Reduction = "per_element"
    temperature_trick: TemperatureTrick = "none"
    mle_every: int = 0

    def __post_init__(self) -> None:
        for name in ("lr", "d_lr", "rescale_delta"):
            if not getattr(self, name) > 0:
                raise ValueError(f"LeakGAN {name} must be > 0, got {getattr(self, name)!r}")
        if not (isinstance(self.n_rollouts, int) and self.n_rollouts >= 1):
            raise ValueError(f"LeakGAN n_rollouts must be an integer >= 1, got {self.n_rollouts!r}")
        if not (isinstance(self.mle_every, int) and self.mle_every >= 0):
            raise ValueError(f"LeakGAN mle_every must be an integer >= 0 (0: never), got {self.mle_every!r}")
        for name, allowed in (("rank_order", RANK_ORDERS), ("cosine_reduction", REDUCTIONS),
                              ("temperature_trick", TEMPERATURE_TRICKS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"LeakGAN {name} must be one of {allowed}, got {getattr(self, name)!r}")


class GeneratorOptimizers(NamedTuple):
    manager: torch.optim.Optimizer
    worker: torch.optim.Optimizer


def generator_optimizers(generator: LeakGANGenerator, lr: float) -> GeneratorOptimizers:
    """One Adam for the manager (goal_init included) and one for the worker (W_psi
    included), as in the code; neither holds the leaked feature extractor."""
    return GeneratorOptimizers(adam(generator.manager_parameters(), lr), adam(generator.worker_parameters(), lr))


def _update(generator: LeakGANGenerator, optimizers: GeneratorOptimizers, manager: torch.Tensor,
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
        for i, value in enumerate(_update(generator, optimizers, m_loss, nll, grad_clip)):
            totals[i] += value
        batches += 1
    if batches == 0:
        raise ValueError(f"{real.shape[0]} sequences do not fill one batch of {batch_size}")
    return {"manager_loss": totals[0] / batches, "worker_nll": totals[1] / batches}


def discriminator_pass(generator: LeakGANGenerator, discriminator: Discriminator,
                                optimizer: torch.optim.Optimizer, real: torch.Tensor, *, negatives: int = 10_000,
                                epochs: int = 3, batch_size: int = 64, temperature_trick: TemperatureTrick = "none",
                                rng: torch.Generator | None = None) -> dict[str, float]:
    """One D pass: ``negatives`` fresh samples of the generator (reading the current D)
    against as many real sequences, ``epochs`` epochs; then the generator reads the
    updated D. The pretraining's D passes and the adversarial phase's (`LeakGAN.discriminator_step`)
    are the same."""
    generator.sync_features(discriminator)
    temperature = code_temperatures(generator.seq_len, train=False) if temperature_trick == "code" else 1.0
    fake = generator.sample(negatives, rng=rng, temperature=temperature)
    metrics = discriminator_round(discriminator, optimizer, real, fake, epochs=epochs, batch_size=batch_size, rng=rng)
    generator.sync_features(discriminator)
    return metrics


class LeakGAN:
    """The adversarial-method interface for LeakGAN (see the module docstring).

    ``discriminator`` must be LeakGAN's own D (`leakgan_discriminator`: one embedding row
    more than the vocabulary, for the pad id), pretrained with the generator by the
    interleaved pretraining, not the pipeline's SeqGAN D. From ``common`` it reads
    batch_size, grad_clip, d_batch_size, d_epochs and d_negatives (the paper's: 64, 5,
    64, 3, 10,000); `SYNTHETIC_SCHEDULE` has the rest (5 D passes per iteration).
    """

    name = "leakgan"
    generator_kind = "leakgan"
    trains_discriminator = True
    Settings = LeakGANSettings

    def __init__(self, generator: LeakGANGenerator, discriminator: Discriminator, real: torch.Tensor,
                 settings: LeakGANSettings, common, rng: torch.Generator) -> None:
        if getattr(generator, "kind", None) != "leakgan":
            raise ValueError(f"LeakGAN trains a LeakGANGenerator, got {type(generator).__name__}")
        rows = discriminator.embedding.num_embeddings
        if rows != generator.vocab_size + 1:
            raise ValueError(
                f"LeakGAN needs its own discriminator with {generator.vocab_size + 1} embedding rows (the vocabulary "
                f"and the pad id of leaked prefixes), got {rows}: build it with "
                "seqgan_core.leakgan.leakgan_discriminator and pretrain it with the interleaved pretraining"
            )
        self.generator, self.discriminator, self.real = generator, discriminator, real
        self.settings, self.common, self.rng = settings, common, rng
        self.optimizers = generator_optimizers(generator, settings.lr)
        self.d_optimizer = adam(discriminator.parameters(), settings.d_lr)
        generator.sync_features(discriminator)

    def stateful(self) -> dict[str, torch.optim.Optimizer]:
        return {"manager_optimizer": self.optimizers.manager, "worker_optimizer": self.optimizers.worker,
                "d_optimizer": self.d_optimizer}

    def generator_step(self, batch: int) -> dict[str, float]:
        g, s = self.generator, self.settings
        c, T = g.step_size, g.seq_len
        temperature = code_temperatures(T, train=True) if s.temperature_trick == "code" else 1.0
        samples = g.sample(self.common.batch_size, rng=self.rng, temperature=temperature)
        g.train()
        passed = g.teacher_forced(samples)
        starts = manager_starts(T, c, g.goal_window)
        lengths = sorted({t + c for t in starts} - {T})
        values = torch.cat([
            rollout_values(g, self.discriminator, samples, passed, lengths, s.n_rollouts, rng=self.rng),
            self.discriminator.prob_real(samples).unsqueeze(1),
        ], dim=1)  # (B, prefix lengths + [T])
        column = {p: i for i, p in enumerate(lengths + [T])}
        q = rescaled_activation(values[:, [column[t + c] for t in starts]], s.rescale_delta, s.rank_order)
        goals = manager_goals(passed.subgoals, passed.goals, starts, g.goal_window)
        m_loss = manager_loss(passed.features, goals, starts, c, q, s.cosine_reduction)
        intrinsic = intrinsic_rewards(passed.features, passed.subgoals, passed.goals, c, g.goal_window,
                                      s.cosine_reduction)
        w_loss = worker_loss(g.log_probs_of(passed.worker[0], passed.goals, samples), intrinsic)
        m, w = _update(g, self.optimizers, m_loss, w_loss, self.common.grad_clip)
        metrics = {"manager_loss": m, "worker_loss": w, "mean_reward": values.mean().item(),
                   "final_reward": values[:, -1].mean().item(), "intrinsic_reward": intrinsic.mean().item()}
        if s.mle_every and (batch + 1) % s.mle_every == 0:
            mle = pretrain_generator_epoch(g, self.optimizers, self.real, batch_size=self.common.batch_size,
                                           grad_clip=self.common.grad_clip, reduction=s.cosine_reduction, rng=self.rng)
            metrics.update({f"mle_{k}": v for k, v in mle.items()})
        return metrics

    def discriminator_step(self, batch: int) -> dict[str, float]:
        c = self.common
        return discriminator_pass(self.generator, self.discriminator, self.d_optimizer, self.real,
                                           negatives=c.d_negatives, epochs=c.d_epochs, batch_size=c.d_batch_size,
                                           temperature_trick=self.settings.temperature_trick, rng=self.rng)
