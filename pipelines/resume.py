"""Resumable training state for the long stages.

DVC deletes a stage's outputs before running it, so the in-progress state lives in
`.checkpoints/` instead. It is keyed by a fingerprint of everything the run depends on
(params, inputs): a re-run after a kill resumes where it stopped; a re-run with other
params or inputs starts afresh and never mixes states.
"""
from __future__ import annotations

import copy
import hashlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .files import save_torch, summary

# The checkpointer of the stage running in this process (a stage has at most one), so that
# an error that stops the stage can say truthfully what the next run resumes from.
_current: Checkpointer | None = None


def fingerprint(*parts: Any, files: list[Path] = ()) -> str:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    for path in files:
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def cuda_rng_states() -> list[torch.Tensor]:
    """The random state of every CUDA device (dropout on the GPU), once this process has used
    CUDA. Before that there is none to keep: no CUDA draw has moved them from what
    `torch.manual_seed` set, and asking would start CUDA for a run that never uses it."""
    return torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []


def what_is_kept() -> str:
    """For an error that stops a stage, a sentence: the resume point this run left on disk,
    or that there is none (stages without checkpoints have none)."""
    if _current is None or _current.step is None or not _current.path.exists():
        return "No checkpoint was saved yet; the next run starts from the beginning."
    return (f"Resume point {_current.path} (after step {_current.step}) is kept: a re-run with the same "
            "params and inputs resumes from it, one with changed params starts afresh.")


class Checkpointer:
    def __init__(self, path: Path, key: str) -> None:
        global _current
        self.path, self.key = path, key
        self.step: int | None = None  # the step of this run's checkpoint on disk, once restored or saved
        _current = self

    def load(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        state = self._read()
        if state is None:
            return None
        if state.get("key") != self.key:
            print(f"note: ignoring {self.path}: it belongs to other params or inputs", file=sys.stderr)
            return None
        saved, here = len(state.get("cuda_rng", [])), torch.cuda.device_count()
        if saved and saved != here:  # another machine: its CUDA random streams cannot be continued here
            print(f"note: ignoring {self.path}: it was saved with {saved} CUDA device(s) and this machine has "
                  f"{here}, so its random states cannot be restored; starting afresh", file=sys.stderr)
            return None
        print(f"note: resuming from {self.path} (step {state['step']})", file=sys.stderr)
        return state

    def _read(self) -> dict[str, Any] | None:
        """The checkpoint's contents; a file that cannot be read (truncated, damaged, or holding
        more than tensors and plain data) is moved aside, so it does not fail every later run."""
        try:
            # weights_only: unpickling anything else could run code from a file in the workspace.
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a damaged file fails in many ways: EOFError, OSError, RuntimeError, KeyError...
            problem = summary(exc)
        else:
            if isinstance(state, dict) and {"key", "step", "history"} <= state.keys():
                return state
            problem = "not a training checkpoint"
        self._move_aside(f"cannot be read ({problem})")
        return None

    def _move_aside(self, why: str) -> None:
        """Keep a checkpoint that cannot be resumed from for a look, out of every later run's way."""
        aside = self.path.with_name(f"{self.path.name}.corrupt")
        self.path.replace(aside)  # replaces an older one: only the latest is worth a look
        print(f"note: {self.path} {why}; moved it to {aside}, and this stage starts afresh", file=sys.stderr)

    def save(self, step: int, history: list[dict], objects: Mapping[str, Any], rngs: Mapping[str, torch.Generator]) -> None:
        """Save after `step`: the `state_dict` of each of `objects` (models, optimisers), the
        state of each random stream in `rngs`, of torch's global one (dropout) and of every
        CUDA device's, the history."""
        save_torch(self.path, {
            "key": self.key, "step": step, "history": history,
            "torch_rng": torch.get_rng_state(), "cuda_rng": cuda_rng_states(),
            **{name: obj.state_dict() for name, obj in objects.items()},
            **{name: rng.get_state() for name, rng in rngs.items()},
        })
        self.step = step

    def restore(self, objects: Mapping[str, Any], rngs: Mapping[str, torch.Generator]) -> tuple[int, list[dict]] | None:
        """Load a matching checkpoint into `objects` and `rngs` (the same names as `save`);
        returns (step, history), or None when there is none to resume from. A checkpoint that
        reads but does not fit them (an entry missing, a tensor of another shape: written by
        other code under the same key) is moved aside, leaving them as they were."""
        state = self.load()
        if state is None:
            return None
        try:
            check_fits(state, objects, rngs)
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            self._move_aside(f"does not fit this run ({summary(exc)})")
            return None
        for name, obj in objects.items():
            obj.load_state_dict(state[name])
        for name, rng in rngs.items():
            rng.set_state(state[name])
        torch.set_rng_state(state["torch_rng"])
        torch.cuda.set_rng_state_all(state.get("cuda_rng", []))  # `load` checked the device count
        self.step = state["step"]
        return state["step"], state["history"]

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
        self.step = None


def check_fits(state: Mapping[str, Any], objects: Mapping[str, Any], rngs: Mapping[str, torch.Generator]) -> None:
    """Raise what restoring ``state`` would raise, without touching ``objects`` or ``rngs``: a
    restore that failed half-way would leave a run neither fresh nor resumed. It loads into
    copies (for a moment, twice the models' memory; one deepcopy, so a copied optimiser
    holds the copied model's parameters)."""
    for name, copied in copy.deepcopy(dict(objects)).items():
        copied.load_state_dict(state[name])
    for name in [*rngs, "torch_rng"]:
        torch.Generator().set_state(state[name])
