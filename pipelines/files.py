"""How stages write and read files: every output atomically (temporary file + rename), so a
killed stage never leaves a truncated file where DVC or the next stage expects a good one,
and with the same bytes for the same content, so a re-run with the same inputs leaves the
data version alone."""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch


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
    return json.loads(require(path).read_text())


def require(path: Path) -> Path:
    """A stage input that must exist; the error names the stage that makes it."""
    if not path.exists():
        raise StageError(
            f"{path} is missing: it is produced by an earlier stage. Run `dvc repro` "
            "(or `dvc repro <stage>`) to rebuild it; do not delete DVC outputs by hand."
        )
    return path
