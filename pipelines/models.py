"""Models built from params and saved or loaded as stage outputs (see `seqgan_core.generators`
for what a saved generator holds)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from seqgan_core import Discriminator, Generator
from seqgan_core.generators import checkpoint_of, from_checkpoint
from seqgan_core.leakgan import LeakGANGenerator, leakgan_discriminator
from seqgan_core.rmc import RelationalMemoryGenerator

from .config import Params
from .datasets import Dataset
from .files import read_torch, reading, save_torch


def build_generator(params: Params, dataset: Dataset) -> torch.nn.Module:
    """A fresh generator of ``generator.kind``, its weights drawn from torch's global generator."""
    g = params.generator
    if g.kind == "rmc":
        return RelationalMemoryGenerator(dataset.vocab_size, g.emb_dim, g.rmc.mem_slots, g.rmc.num_heads,
                                         g.rmc.head_size, dataset.seq_len, dataset.start_token, g.rmc.layer_norm)
    if g.kind == "leakgan":
        d = params.discriminator
        return LeakGANGenerator(dataset.vocab_size, dataset.seq_len, g.emb_dim, g.hidden_dim, g.leakgan.goal_size,
                                g.leakgan.step_size, dataset.start_token, g.leakgan.goal_window, d.emb_dim,
                                d.filter_sizes, d.num_filters, g.init_std)
    return Generator(dataset.vocab_size, g.emb_dim, g.hidden_dim, dataset.seq_len, dataset.start_token, g.init_std)


def build_discriminator(params: Params, dataset: Dataset) -> Discriminator:
    """The pretrained discriminator's architecture: SeqGAN's CNN from the `discriminator`
    params; for ``generator.kind`` leakgan the same CNN with LeakGAN's pad row
    (`seqgan_core.leakgan.leakgan_discriminator`), whose features the generator reads."""
    d = params.discriminator
    build = leakgan_discriminator if params.generator.kind == "leakgan" else Discriminator
    return build(dataset.vocab_size, dataset.seq_len, d.emb_dim, d.filter_sizes, d.num_filters, d.dropout, d.l2_reg,
                 init=d.init)


def save_generator(path: Path, generator: torch.nn.Module, **extra: Any) -> None:
    """The generator's checkpoint, with ``extra`` entries beside it (which `load_generator`
    and `seqgan_core.generators.from_checkpoint` leave alone)."""
    save_torch(path, {**checkpoint_of(generator), **extra})


def load_generator(path: Path, device: torch.device) -> torch.nn.Module:
    with reading(path):  # a kind, config or weights that do not fit together
        generator = from_checkpoint(load_saved(path))
    return generator.to(device)


def save_model(path: Path, model: torch.nn.Module, config: dict[str, Any],
               optimizer: torch.optim.Optimizer | None = None) -> None:
    """A model other than a generator (the oracle, a discriminator) with the settings it was
    built from, and the state of the optimiser that trained it if training goes on later."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    extra = {} if optimizer is None else {"optimizer": optimizer.state_dict()}
    save_torch(path, {"config": config, "state_dict": state, **extra})


def load_saved(path: Path) -> dict[str, Any]:
    """A file written by `save_model` (or `save_generator`), its weights checked finite."""
    return read_torch(path)

