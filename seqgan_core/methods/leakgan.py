"""LeakGAN (Guo et al., AAAI 2018): a manager/worker generator that reads the
discriminator's leaked features (`seqgan_core.leakgan`), trained against its own D.

One generator update (`LeakGAN.generator_step`), after the paper:

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

One discriminator step is one D pass (`discriminator_pass`: ``d_negatives`` fresh
samples, ``d_epochs`` epochs), after which the generator reads the updated D; the code
runs 5 per iteration (params ``adversarial.d_steps``).

The discriminator is LeakGAN's own (`leakgan_discriminator`: SeqGAN's CNN with a row for
the pad id of leaked prefixes), pretrained WITH the generator by the interleaved
pretraining (params ``generator.kind: leakgan``), so the D the generator's manager
learnt to read is the one adversarial training starts from; a plain SeqGAN D is refused.

In the official code D's score has no effect on the manager (LeakGAN#17): the cosines
are averaged over the batch before Q multiplies them, and Q's batch mean is a constant
after the rank rescale (`objectives`); its adversarial phase is then the manager's
pretraining objective on its own samples plus worker MLE on them weighted by the mean
cosine. ``cosine_reduction="batch_mean"`` and ``rank_order="first_appearance"``
reproduce that; the defaults are the paper's per-sample rewards and real ranking.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ..leakgan.objectives import (RankOrder, Reduction, intrinsic_rewards, manager_goals, manager_loss,
                                  manager_starts, rescaled_activation, worker_loss)
from ..leakgan.pretraining import (TemperatureTrick, code_temperatures, discriminator_pass, generator_optimizers,
                                   pretrain_generator_epoch, update)
from ..leakgan.rollout import rollout_values
from .base import AdversarialMethod
from .settings import Settings, bounded


@dataclasses.dataclass(frozen=True)
class LeakGANSettings(Settings):
    """LeakGAN's own hyperparameters, for its pretraining and its adversarial phase alike
    (the code keeps one learning rate per model throughout); defaults: the paper's
    synthetic setting (L = 20) and, for what the paper leaves open, the official code.

    - ``rank_order``: "score" (the paper: rank by D's values) or "first_appearance" (the
      code's dictionary order, uncorrelated with D: reproduces LeakGAN#17)
    - ``cosine_reduction``: "per_element" (the paper) or "batch_mean" (the code)
    - ``temperature_trick``: "none" (the model's own softmax; the author's fixed
      ``No Temperature/`` code) or "code" (1.5-sharpened training samples on the first
      two steps and sharpened D negatives, `code_temperatures`)

    The code divides the rescaled rewards by the rollout count; a constant factor of the
    manager loss, which Adam's update does not see, so it is left out.
    """
    lr: float = bounded(1.5e-3, gt=0, description="manager's and worker's Adam (the code: 1.5e-3 at L 20, 5e-4 at 40)")
    d_lr: float = bounded(5e-5, gt=0, description="D's Adam (the code's)")
    n_rollouts: int = bounded(4, ge=1, description="completions per prefix for the manager's Q (the code: 4)")
    rescale_delta: float = bounded(16.0, gt=0, description="delta of the rescaled activation (the code: 16)")
    rank_order: RankOrder = "score"
    cosine_reduction: Reduction = "per_element"
    temperature_trick: TemperatureTrick = "none"
    mle_every: int = bounded(0, ge=0, description="an MLE epoch after every this many updates; 0: none (the "
                                                  "synthetic code; its COCO code: 10)")


class LeakGAN(AdversarialMethod):
    """`leakgan`: see the module docstring."""

    name = "leakgan"
    generator_kinds = ("leakgan",)
    trains_discriminator = True
    Settings = LeakGANSettings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Two Adams (manager, worker), each clipped on its own, as in the code; they replace
        # the base's one Adam over every parameter.
        self.g_optimizer = generator_optimizers(self.generator, self.generator_lr())

    def build_discriminator(self, pretrained: torch.nn.Module) -> torch.nn.Module:
        g = self.generator
        rows = pretrained.embedding.num_embeddings
        if rows != g.vocab_size + 1:
            raise ValueError(
                f"LeakGAN needs its own discriminator with {g.vocab_size + 1} embedding rows (the vocabulary "
                f"and the pad id of leaked prefixes), got {rows}: build it with "
                "seqgan_core.leakgan.leakgan_discriminator and pretrain it with the interleaved pretraining"
            )
        g.sync_features(pretrained)
        return pretrained

    def generator_lr(self) -> float:
        return self.settings.lr

    def discriminator_lr(self) -> float:
        return self.settings.d_lr

    def generator_step(self, batch: int) -> dict[str, float]:
        g, s, d = self.generator, self.settings, self.discriminator
        c, T = g.step_size, g.seq_len
        temperature = code_temperatures(T, train=True) if s.temperature_trick == "code" else 1.0
        samples = g.sample(self.common.batch_size, rng=self.rng, temperature=temperature)
        g.train()
        passed = g.teacher_forced(samples)
        starts = manager_starts(T, c, g.goal_window)
        lengths = sorted({t + c for t in starts} - {T})
        values = torch.cat([rollout_values(g, d, samples, passed, lengths, s.n_rollouts, rng=self.rng),
                            d.prob_real(samples).unsqueeze(1)], dim=1)  # (B, prefix lengths + [T])
        column = {p: i for i, p in enumerate(lengths + [T])}
        q = rescaled_activation(values[:, [column[t + c] for t in starts]], s.rescale_delta, s.rank_order)
        goals = manager_goals(passed.subgoals, passed.goals, starts, g.goal_window)
        m_loss = manager_loss(passed.features, goals, starts, c, q, s.cosine_reduction)
        intrinsic = intrinsic_rewards(passed.features, passed.subgoals, passed.goals, c, g.goal_window,
                                      s.cosine_reduction)
        w_loss = worker_loss(g.log_probs_of(passed.worker[0], passed.goals, samples), intrinsic)
        m, w = update(g, self.g_optimizer, m_loss, w_loss, self.common.grad_clip)
        metrics = {"manager_loss": m, "worker_loss": w, "mean_reward": values.mean().item(),
                   "final_reward": values[:, -1].mean().item(), "intrinsic_reward": intrinsic.mean().item()}
        if s.mle_every and (batch + 1) % s.mle_every == 0:
            mle = pretrain_generator_epoch(g, self.g_optimizer, self.real, batch_size=self.common.batch_size,
                                           grad_clip=self.common.grad_clip, reduction=s.cosine_reduction, rng=self.rng)
            metrics.update({f"mle_{k}": v for k, v in mle.items()})
        return metrics

    def discriminator_step(self, batch: int) -> dict[str, float]:
        c = self.common
        return discriminator_pass(self.generator, self.discriminator, self.d_optimizer, self.real,
                                  negatives=c.d_negatives, epochs=c.d_epochs, batch_size=c.d_batch_size,
                                  temperature_trick=self.settings.temperature_trick, rng=self.rng,
                                  execution=c.execution)

