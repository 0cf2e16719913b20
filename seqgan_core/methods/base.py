"""What every adversarial-training method shares: the common settings (budget, optimisers)
and the interface the training loop calls.

A method trains an MLE-pretrained generator (and, for the GANs, a discriminator) one
adversarial batch at a time:

    method = SeqGAN(generator, discriminator, real, SeqGAN.Settings(), Common(), rng)
    for batch in range(200):
        metrics = method.generator_step(batch)
        metrics.update(method.discriminator_step(batch))   # {} for methods without D

`method.discriminator` is the discriminator the method trains: the pretrained SeqGAN CNN
it was given, or one it builds (`build_discriminator`: RelGAN's, a per-token critic D...).
`stateful()` names everything beyond the generator and that discriminator that a resumed
run must restore (optimisers, a delayed rollout policy, ...), so a loop can checkpoint any
method without knowing it.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

import torch

from .. import randomness
from ..train import adam, discriminator_round
from .settings import Settings, bounded


@dataclasses.dataclass(frozen=True)
class Common(Settings):
    """What every method shares (the `adversarial` section of the params), with the
    authors' values as defaults: the same budget (batch size, optimiser) for every method
    and SeqGAN's discriminator rounds for the methods that train one."""

    batches: int = bounded(200, ge=1, description="adversarial batches in the run (what run-long schedules span)")
    batch_size: int = bounded(64, ge=1)
    lr: float = bounded(0.01, gt=0, description="generator Adam learning rate")
    grad_clip: float = bounded(5.0, ge=0, description="global-norm clip; 0 = none")
    d_lr: float = bounded(1e-4, gt=0, description="discriminator Adam learning rate")
    d_batch_size: int = bounded(64, ge=1)
    d_epochs: int = bounded(3, ge=1)
    d_negatives: int = bounded(10_000, ge=1)
    # How D's training steps run (`seqgan_core.execution`); not an algorithmic choice: every
    # mode gives eager's results up to float rounding. The pipeline passes params `execution`.
    execution: Literal["auto", "eager", "cuda_graph", "compiled"] = "eager"


class AdversarialMethod:
    """Base of every method in `seqgan_core.methods.METHODS`.

    Subclasses set the class attributes and implement `generator_step`; a method with a
    discriminator sets ``trains_discriminator`` and gets SeqGAN's D round (fresh
    negatives, `train.discriminator_round`) unless it overrides `discriminator_step`; one
    that trains a discriminator of its own builds it in `build_discriminator`.
    """

    name: ClassVar[str]
    # The generator architectures (`seqgan_core.generators` kinds) it can train; the first is its paper's.
    generator_kinds: ClassVar[tuple[str, ...]] = ("lstm",)
    trains_discriminator: ClassVar[bool] = False
    trains: ClassVar[bool] = True  # False: the generator is scored as it starts (`random`, `pretrained`)
    starts_untrained: ClassVar[bool] = False  # True: a fresh generator instead of the pretrained one (`random`)
    Settings: ClassVar[type[Settings]] = Settings  # the method's own settings (params `methods.<name>`)

    def __init__(self, generator: torch.nn.Module, discriminator: torch.nn.Module, real: torch.Tensor,
                 settings: Any, common: Common, rng: torch.Generator, *, eos_id: int | None = None) -> None:
        """``real``: the training sequences (n, T) on the CPU; ``rng``: the method's CPU random
        stream (`seqgan_core.randomness`); ``eos_id``: the corpus's end token, which rewards
        computed on text (BLEU) cut rows at, or None for the oracle's fixed-length rows."""
        if not isinstance(settings, self.Settings):
            raise TypeError(f"{self.name} takes {self.Settings.__name__}, got {type(settings).__name__}")
        if getattr(generator, "kind", None) not in self.generator_kinds:
            raise TypeError(f"{self.name} trains {' or '.join(self.generator_kinds)} generators, "
                            f"got a {getattr(generator, 'kind', type(generator).__name__)}")
        self.generator, self.real = generator, real
        self.settings, self.common, self.rng, self.eos_id = settings, common, rng, eos_id
        self.discriminator = self.build_discriminator(discriminator)
        self.g_optimizer = adam(generator.parameters(), self.generator_lr())
        # D's optimiser exists for every method, so that every checkpoint has the same parts.
        self.d_optimizer = adam(self.discriminator.parameters(), self.discriminator_lr())

    def build_discriminator(self, pretrained: torch.nn.Module) -> torch.nn.Module:
        """The discriminator this method trains: the pipeline's pretrained one, unless the
        method builds its own (on the generator's device, drawn from ``self.rng``)."""
        return pretrained

    def generator_lr(self) -> float:
        """The generator's learning rate: the shared one unless the method's paper used its own."""
        return self.common.lr

    def discriminator_lr(self) -> float:
        """The discriminator's learning rate: the shared one unless the method's paper used its own."""
        return self.common.d_lr

    def real_batch(self, n: int) -> torch.Tensor:
        """``n`` training sequences drawn with replacement, on the generator's device."""
        rows = randomness.randint(len(self.real), (n,), self.rng, device="cpu")
        return self.real[rows].to(self.generator.device)

    def generator_step(self, batch: int) -> dict[str, float]:
        """One generator update at adversarial batch ``batch`` (0-based; schedules read it)."""
        raise NotImplementedError

    def negatives(self, batch: int) -> torch.Tensor:
        """The generated sequences of one D round: fresh free-running samples."""
        return self.generator.sample(self.common.d_negatives, rng=self.rng)

    def discriminator_step(self, batch: int) -> dict[str, float]:
        if not self.trains_discriminator:
            return {}
        return discriminator_round(self.discriminator, self.d_optimizer, self.real, self.negatives(batch),
                                   epochs=self.common.d_epochs, batch_size=self.common.d_batch_size, rng=self.rng,
                                   execution=self.common.execution)

    def stateful(self) -> dict[str, Any]:
        """What a resumed run restores besides the generator and the discriminator."""
        return {"g_optimizer": self.g_optimizer, "d_optimizer": self.d_optimizer}
