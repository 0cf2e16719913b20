"""The lock that serialises champion changes.

A file lock (``fcntl.flock``): it serialises gates on one machine, or on a file system with
working ``flock``. By default the lock file lies next to the SQLite database
(``<db>.registry.lock``); ``SEQGAN_REGISTRY_LOCK`` (or the ``lock_path`` argument) names
another one. With a remote tracking server and gates on several machines it does not
serialise them: those need a lock all of them share.
"""
from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_ENV = "SEQGAN_REGISTRY_LOCK"


def _lock_path(explicit: Path | str | None) -> Path:
    if explicit is not None:
        return Path(explicit)
    if env := os.environ.get(LOCK_ENV):
        return Path(env)
    import mlflow

    uri = mlflow.get_registry_uri()
    if uri.startswith("sqlite:///"):
        db = uri[len("sqlite:///"):].split("?", 1)[0]
        if db and db != ":memory:":
            return Path(db).with_name(Path(db).name + ".registry.lock")
    # Not a local SQLite store: this lock serialises gates on this machine only.
    import hashlib

    digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"seqgan-registry-{digest}.lock"


@contextmanager
def registry_lock(lock_path: Path | str | None = None) -> Iterator[Path]:
    """Exclusive lock for champion changes: ``flock`` on a lock file (processes; each call
    opens its own file description, so threads exclude each other too)."""
    path = _lock_path(lock_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield path
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
