"""The lock that serialises champion changes.

Two kinds, one choice per registry:
- A PostgreSQL advisory lock, when the registry is on a server and gates run on several
  machines: ``SEQGAN_REGISTRY_LOCK_DSN`` names the database (normally the MLflow server's
  backend store, `postgresql://user:password@host:port/db`), or the tracking URI is itself a
  ``postgresql://`` store. Every gate takes the same session-level lock
  (``pg_advisory_lock``) before it reads the champion, so gates on any number of machines
  run one at a time. The database releases it when the holder's connection ends, so a gate
  killed mid-decision never leaves it held (a lease that expires would instead risk two
  holders at once). Why not an alias compare-and-set through the MLflow API: MLflow has no
  conditional alias update, so a re-read-and-retry loop still has a window in which two
  gates both see the old champion and the later write wins.
- A file lock (``fcntl.flock``) otherwise: it serialises gates on one machine, or on a file
  system with working ``flock``. By default the lock file lies next to the SQLite database
  (``<db>.registry.lock``); ``SEQGAN_REGISTRY_LOCK`` (or the ``lock_path`` argument) names
  another one. With an http(s) tracking server and no DSN it still serialises the gates of
  this machine only, and says so once.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_ENV = "SEQGAN_REGISTRY_LOCK"
LOCK_DSN_ENV = "SEQGAN_REGISTRY_LOCK_DSN"
# One lock per registry database: a fixed key (the database is the registry's own), so every
# gate agrees on it whatever host name or port it reaches the server by.
ADVISORY_KEY = int.from_bytes(hashlib.sha256(b"seqgan.registry.champion").digest()[:8], "big", signed=True)
WAIT_S = 600  # a gate takes well under a second: a longer wait means a stuck holder


def _registry_uri() -> str:
    import mlflow

    return mlflow.get_registry_uri()


def lock_dsn() -> str | None:
    """The PostgreSQL database whose advisory lock serialises gates, or None (a file lock)."""
    if dsn := os.environ.get(LOCK_DSN_ENV):
        return dsn
    uri = _registry_uri()
    if uri.startswith("postgresql"):  # a store used directly: postgresql+psycopg2://... -> postgresql://...
        return "postgresql://" + uri.split("://", 1)[1]
    if uri.startswith(("http://", "https://")):
        warnings.warn(f"registry {uri} is a server but {LOCK_DSN_ENV} is not set: the gate's lock serialises "
                      "gates on this machine only", RuntimeWarning, stacklevel=3)
    return None


def _lock_path(explicit: Path | str | None) -> Path:
    if explicit is not None:
        return Path(explicit)
    if env := os.environ.get(LOCK_ENV):
        return Path(env)
    uri = _registry_uri()
    if uri.startswith("sqlite:///"):
        db = uri[len("sqlite:///"):].split("?", 1)[0]
        if db and db != ":memory:":
            return Path(db).with_name(Path(db).name + ".registry.lock")
    # Not a local SQLite store: this lock serialises gates on this machine only.
    digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"seqgan-registry-{digest}.lock"


@contextmanager
def advisory_lock(dsn: str, wait_s: float = WAIT_S) -> Iterator[str]:
    """The session-level advisory lock ``ADVISORY_KEY`` in database `dsn`, held while the
    block runs (and released by the server if this process dies)."""
    import psycopg2

    connection = psycopg2.connect(dsn, connect_timeout=30, application_name="seqgan-registry-gate")
    connection.autocommit = True  # a session lock, not tied to a transaction
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = %s", (f"{int(wait_s * 1000)}ms",))
            cursor.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_KEY,))
        try:
            info = connection.info  # never the DSN itself: it may hold a password
            yield f"advisory lock {ADVISORY_KEY} in {info.dbname} at {info.host}:{info.port}"
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_KEY,))
    finally:
        connection.close()


@contextmanager
def file_lock(lock_path: Path | str | None = None) -> Iterator[Path]:
    """``flock`` on a lock file (processes; each call opens its own file description, so
    threads exclude each other too)."""
    path = _lock_path(lock_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield path
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextmanager
def registry_lock(lock_path: Path | str | None = None) -> Iterator[Path | str]:
    """Exclusive lock for champion changes: the advisory lock when a database is configured
    (see the module's docstring), else the file lock (``lock_path`` forces the file lock)."""
    dsn = lock_dsn() if lock_path is None else None
    with advisory_lock(dsn) if dsn else file_lock(lock_path) as held:
        yield held
