"""The generator architectures, one table: a saved generator is ``{"kind", "config",
"state_dict"}``, and `from_checkpoint` rebuilds it from that alone, so the pipeline, the
registry's packaged model and a notebook load any architecture the same way.

Every architecture offers ``kind``, ``config()``, ``sample(n, rng=, temperature=, prefix=)``,
``token_log_probs(tokens)`` and ``vocab_size``/``seq_len``/``start_token``/``device``.
"""
from __future__ import annotations

from typing import Any

import torch

from .leakgan.generator import LeakGANGenerator
from .lstm import LSTMLanguageModel
from .rmc import RelationalMemoryGenerator

# "lstm": SeqGAN's generator (every method's); "rmc": RelGAN's relational memory;
# "leakgan": LeakGAN's manager and worker, with its copy of D's feature extractor.
GENERATORS: dict[str, type[torch.nn.Module]] = {
    cls.kind: cls for cls in (LSTMLanguageModel, RelationalMemoryGenerator, LeakGANGenerator)
}


def checkpoint_of(generator: torch.nn.Module) -> dict[str, Any]:
    """What a saved generator holds: its kind, its constructor's arguments and its weights (on the CPU)."""
    return {"kind": generator.kind, "config": generator.config(),
            "state_dict": {k: v.detach().cpu() for k, v in generator.state_dict().items()}}


def from_checkpoint(checkpoint: dict[str, Any]) -> torch.nn.Module:
    """The generator a checkpoint describes (checkpoints without a kind are LSTMs: the only
    architecture before the table)."""
    kind = checkpoint.get("kind", LSTMLanguageModel.kind)
    if kind not in GENERATORS:
        raise ValueError(f"unknown generator kind {kind!r}; known: {sorted(GENERATORS)}")
    model = GENERATORS[kind](**checkpoint["config"])
    model.load_state_dict(checkpoint["state_dict"])
    return model
