"""Resumable training state for the long stages.

DVC deletes a stage's outputs before running it, so the in-progress state lives in
`.checkpoints/` instead. It is keyed by a fingerprint of everything the run depends on
(params, inputs): a re-run after a kill resumes where it stopped; a re-run with other
params or inputs starts afresh and never mixes states.
"""
from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .runtime import save_torch


def fingerprint(*parts: Any, files: list[Path] = ()) -> str:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    for path in files:
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


class Checkpointer:
    def __init__(self, path: Path, key: str) -> None:
        self.path, self.key = path, key

    def load(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        if state.get("key") != self.key:
            print(f"note: ignoring {self.path}: it belongs to other params or inputs", file=sys.stderr)
            return None
        print(f"note: resuming from {self.path} (step {state['step']})", file=sys.stderr)
        return state

    def save(self, step: int, history: list[dict], objects: Mapping[str, Any], rngs: Mapping[str, torch.Generator]) -> None:
        """Save after `step`: the `state_dict` of each of `objects` (models, optimisers), the
        state of each random stream in `rngs` and of torch's global one (dropout), the history."""
        save_torch(self.path, {
            "key": self.key, "step": step, "history": history, "torch_rng": torch.get_rng_state(),
            **{name: obj.state_dict() for name, obj in objects.items()},
            **{name: rng.get_state() for name, rng in rngs.items()},
        })

    def restore(self, objects: Mapping[str, Any], rngs: Mapping[str, torch.Generator]) -> tuple[int, list[dict]] | None:
        """Load a matching checkpoint into `objects` and `rngs` (the same names as `save`);
        returns (step, history), or None when there is none to resume from."""
        state = self.load()
        if state is None:
            return None
        for name, obj in objects.items():
            obj.load_state_dict(state[name])
        for name, rng in rngs.items():
            rng.set_state(state[name])
        torch.set_rng_state(state["torch_rng"])
        return state["step"], state["history"]

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
