"""The non-adversarial rows of SeqGAN's Table 1: the untrained generator, more MLE, and
scheduled sampling (Bengio et al., 2015), each with the adversarial methods' budget; and
`pretrained`, the start every method trains from, scored unchanged."""
from __future__ import annotations

import dataclasses

from ..train import mle_step, scheduled_sampling_step, teacher_forcing_probability
from .base import AdversarialMethod
from .settings import Settings, bounded


class NeverUpdated(AdversarialMethod):
    """A control row: the generator is scored as it starts, with no adversarial batch."""

    generator_kinds = ("lstm", "rmc", "leakgan")
    trains = False

    def generator_step(self, batch: int) -> dict[str, float]:
        raise RuntimeError(f"{self.name}: the generator is never updated")


class Untrained(NeverUpdated):
    """`random`: the generator as initialised, never trained (Table 1's first row)."""

    name = "random"
    starts_untrained = True


class Pretrained(NeverUpdated):
    """`pretrained`: the MLE-pretrained generator every method starts from, unchanged.
    Beside the trained rows it says how far each method moved from its start, and whether
    it moved at all: `mle` is this model after the methods' budget of more MLE."""

    name = "pretrained"


class ContinuedMLE(AdversarialMethod):
    """`mle`: teacher-forced MLE on real batches, continued for the adversarial budget.
    On any generator's ``token_log_probs``: for LeakGAN's, the worker's likelihood (the
    manager only sets its detached goal, and the leaked D stays as pretrained)."""

    name = "mle"
    generator_kinds = ("lstm", "rmc", "leakgan")

    def generator_step(self, batch: int) -> dict[str, float]:
        return {"g_loss": mle_step(self.generator, self.g_optimizer, self.real_batch(self.common.batch_size),
                                   grad_clip=self.common.grad_clip)}


@dataclasses.dataclass(frozen=True)
class ScheduledSamplingSettings(Settings):
    """Teacher-forcing probability max(floor, start - decay * batch); the authors' baseline
    falls from 1.0 by 0.002 per epoch (here per adversarial batch: the profiles pick the
    decay so that the schedule spans the run)."""

    start: float = bounded(1.0, ge=0, le=1)
    decay: float = bounded(0.002, ge=0, description="probability lost per adversarial batch")
    floor: float = bounded(0.0, ge=0, le=1)


class ScheduledSampling(AdversarialMethod):
    """`scheduled_sampling`: MLE where each step reads the model's own sampled token with
    probability 1 - p, p falling per batch."""

    name = "scheduled_sampling"
    Settings = ScheduledSamplingSettings

    def generator_step(self, batch: int) -> dict[str, float]:
        s = self.settings
        p = teacher_forcing_probability(batch, start=s.start, decay=s.decay, floor=s.floor)
        return scheduled_sampling_step(self.generator, self.g_optimizer, self.real_batch(self.common.batch_size), p,
                                       grad_clip=self.common.grad_clip, rng=self.rng)
