"""Every seeded random draw of seqgan_core and pipelines, in one place.

The rule: **a draw is made on its generator's own device and the result is moved to
where it is used.** Every named random stream the project creates is a CPU
``torch.Generator`` (`pipelines.runtime.seeded_rng`, `Oracle.sample`, the oracle
stage), and ``rng=None`` means torch's global *CPU* generator, so every seeded draw is
made by the CPU and the same seed gives the same numbers on every device: the oracle's
data, mini-batch orders, samples and rollouts do not depend on whether the models live
on the CPU or on a GPU. Drawing on the generator's device also means a generator and a
tensor on different devices can never meet inside a torch call (PyTorch refuses a CUDA
generator for a CPU draw and vice versa), whatever generator a caller passes.

The cost on a GPU is one host-to-device copy per draw, so the hot paths draw in bulk:
`LSTMLanguageModel.sample` draws the uniforms of all its steps at once and `rollout`
those of all its completions, one copy each instead of one per token. On the CPU the
draws are the same calls as before, so seeded CPU results are unchanged.

What does not go through here: dropout (``nn.Dropout`` in the discriminator) draws from
torch's global generator of the device it runs on, seeded by ``torch.manual_seed`` (which
seeds the CPU and every CUDA device; each stage calls it with the training seed); its
state is the ``torch_rng`` part of a checkpoint. `tests/test_rng_rule.py` checks that no
other module of seqgan_core or pipelines calls a torch random function itself.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

_CPU = torch.device("cpu")


def generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed``: what every named stream is."""
    return torch.Generator().manual_seed(seed)


def draw_device(rng: torch.Generator | None) -> torch.device:
    """Where a draw from ``rng`` is made: its own device; the CPU for the global generator."""
    return _CPU if rng is None else rng.device


def _to(x: torch.Tensor, device: torch.device | str | None) -> torch.Tensor:
    return x if device is None else x.to(device)


def uniform(shape: Sequence[int], rng: torch.Generator | None = None, *,
            device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """U[0, 1) variates of ``shape`` (``torch.rand``), drawn from ``rng`` and moved to ``device``."""
    return _to(torch.rand(tuple(shape), generator=rng, device=draw_device(rng), dtype=dtype), device)


def randint(high: int, shape: Sequence[int], rng: torch.Generator | None = None, *,
            low: int = 0, device: torch.device | str | None = None) -> torch.Tensor:
    """Integers in [low, high) (``torch.randint``), drawn from ``rng`` and moved to ``device``."""
    return _to(torch.randint(low, high, tuple(shape), generator=rng, device=draw_device(rng)), device)


def randperm(n: int, rng: torch.Generator | None = None, *,
             device: torch.device | str | None = None) -> torch.Tensor:
    """A random permutation of 0..n-1 (``torch.randperm``), drawn from ``rng`` and moved to ``device``."""
    return _to(torch.randperm(n, generator=rng, device=draw_device(rng)), device)


@torch.no_grad()
def normal_(tensor: torch.Tensor, mean: float = 0.0, std: float = 1.0,
            rng: torch.Generator | None = None) -> torch.Tensor:
    """Fill ``tensor`` in place with N(mean, std^2) variates drawn from ``rng``."""
    where = draw_device(rng)
    if tensor.device == where:
        return tensor.normal_(mean, std, generator=rng)
    drawn = torch.empty(tensor.shape, dtype=tensor.dtype, device=where).normal_(mean, std, generator=rng)
    return tensor.copy_(drawn)


def gumbel(shape: Sequence[int], rng: torch.Generator | None = None, *,
           device: torch.device | str | None = None, dtype: torch.dtype | None = None,
           eps: float = 1e-10) -> torch.Tensor:
    """Gumbel(0, 1) variates ``-log(-log(u + eps) + eps)``, u ~ U[0, 1) from ``rng``: RelGAN's
    ``add_gumbel`` (eps 1e-10 keeps both logs finite at u = 0).

    The uniforms are drawn on ``rng``'s device and moved; the two logs then run on
    ``device``: the same uniforms on every device, and on a GPU the (steps x batch x
    vocabulary) transform is not left to the CPU.
    """
    u = uniform(shape, rng, device=device, dtype=dtype)
    return u.add_(eps).log_().neg_().add_(eps).log_().neg_()


@torch.no_grad()
def trunc_normal_(tensor: torch.Tensor, std: float, rng: torch.Generator | None = None) -> torch.Tensor:
    """Fill ``tensor`` with N(0, std^2) variates cut at +-2 std (TF's truncated_normal, which
    RelGAN's initialisers use), by the inverse CDF of one uniform each, drawn from ``rng``."""
    lo = 0.5 * (1.0 + torch.erf(torch.tensor(-2.0 / 2.0**0.5))).item()  # Phi(-2)
    u = uniform(tensor.shape, rng, device=tensor.device, dtype=tensor.dtype)
    # Phi^-1(p) = sqrt(2) erfinv(2p - 1) for p uniform on [Phi(-2), Phi(2)]
    return tensor.copy_(torch.erfinv(u.mul_(1.0 - 2.0 * lo).add_(lo).mul_(2.0).sub_(1.0)).mul_(std * 2.0**0.5))


@torch.no_grad()
def uniform_(tensor: torch.Tensor, low: float, high: float, rng: torch.Generator | None = None) -> torch.Tensor:
    """Fill ``tensor`` with U[low, high) variates drawn from ``rng``."""
    return tensor.copy_(uniform(tensor.shape, rng, device=tensor.device, dtype=tensor.dtype).mul_(high - low).add_(low))


@contextmanager
def global_draws_from(rng: torch.Generator | None) -> Iterator[None]:
    """Run a block whose draws come from torch's global CPU generator (``nn.init`` in the
    constructor of a module that takes no ``rng``) on a seed drawn from ``rng``, and put
    the global generator back as it was: the block's draws are then a function of ``rng``
    alone, and the caller's global stream does not move (with ``rng=None`` the seed itself
    is one draw from the global generator)."""
    seed = int(randint(2**62, (1,), rng).item())
    with torch.random.fork_rng(devices=[]):
        # Not torch.manual_seed: it reseeds every CUDA generator too, which fork_rng(devices=[])
        # does not put back (a GPU run's dropout stream would jump).
        torch.default_generator.manual_seed(seed)
        yield
