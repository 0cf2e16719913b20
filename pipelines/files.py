"""How stages write and read files: every output atomically (temporary file + rename), so a
killed stage never leaves a truncated file where DVC or the next stage expects a good one,
and with the same bytes for the same content, so a re-run with the same inputs leaves the
data version alone."""
from __future__ import annotations

import json
import os
import pickle
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .contract import producer_of


class StageError(RuntimeError):
    """A stage cannot run: the message names the cause and the fix."""


def _current_umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Run ``write`` on a temporary file beside ``path``, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it 0600; an output gets the mode any new file gets
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, payload: Any) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n"))


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def save_torch(path: Path, payload: Any) -> None:
    """Same payload, same bytes: given a path, torch.save records the file's (temporary,
    random) name inside the archive; given an open file it records a fixed one."""
    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:
            torch.save(payload, f)

    atomic_write(path, write)


def save_tokens(path: Path, tokens: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:  # a file object: np.save would append ".npy" to a path
            np.save(f, tokens, allow_pickle=False)

    atomic_write(path, write)


def read_json(path: Path) -> Any:
    with reading(path):
        return json.loads(path.read_text())


def read_torch(path: Path) -> Any:
    """A file written by `save_torch`, read without unpickling code (a pickle in a file of the
    workspace could run it). NaN or inf among the weights of its ``state_dict`` stop the stage:
    used, they would surface later as a training loss gone NaN, blamed on a learning rate."""
    with reading(path):
        payload = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(payload, dict) and "state_dict" in payload:
        require_finite(path, payload["state_dict"])
    return payload


def read_tokens(path: Path) -> np.ndarray:
    """An array written by `save_tokens`."""
    with reading(path), path.open("rb") as f:
        # np.load takes any file without the .npy magic for a pickle and suggests allow_pickle.
        np.lib.format.read_magic(f)
        f.seek(0)
        return np.load(f, allow_pickle=False)


def require(path: Path) -> Path:
    """A stage input that must exist; the error names the stage that makes it."""
    if not path.exists():
        raise StageError(
            f"{path} is missing: it is produced by an earlier stage. Run `dvc repro` "
            "(or `dvc repro <stage>`) to rebuild it; do not delete DVC outputs by hand."
        )
    return path


# How reading a damaged file, or one some other program wrote, fails: torch's zip reader
# (RuntimeError), its weights-only unpickler, json and csv parsing (ValueError), a truncated
# file (EOFError), a payload without the expected entries or shapes (KeyError, TypeError).
UNREADABLE = (OSError, EOFError, ValueError, RuntimeError, KeyError, TypeError, pickle.UnpicklingError)


@contextmanager
def reading(path: Path) -> Iterator[None]:
    """Read or decode the stage input ``path`` inside: a file that is there but cannot be used
    stops the stage with one line naming it and how to get a good one back (`unusable`)."""
    require(path)
    try:
        yield
    except StageError:  # already says what is wrong (a RuntimeError, so before UNREADABLE)
        raise
    except UNREADABLE as exc:
        raise unusable(path, f"cannot be read ({summary(exc)})") from None


def summary(exc: BaseException) -> str:
    """An exception in one line: torch's messages run on for paragraphs."""
    first_line = str(exc).strip().partition("\n")[0]
    return f"{type(exc).__name__}: {first_line[:200]}"


def require_finite(path: Path, state_dict: Mapping[str, torch.Tensor]) -> None:
    bad = [name for name, tensor in state_dict.items()
           if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if bad:
        raise unusable(path, f"holds NaN/inf weights ({', '.join(bad)})")


def unusable(path: Path, problem: str) -> StageError:
    """The error for a stage input that is there but cannot be used: what is wrong with it,
    and the DVC command that writes it again."""
    made_by = producer_of(path)
    if made_by is None:
        return StageError(f"{path} {problem}; re-run the stage that writes it with `dvc repro -f <stage>`")
    stage, output = made_by
    return StageError(f"{path} {problem}; rebuild it with `dvc repro -f {stage}` (or, if it was changed after "
                      f"that stage wrote it, restore it with `dvc checkout {output}`)")
