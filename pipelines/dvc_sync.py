"""Moving stage results between clones of the repository through a DVC remote.

A stage run in one clone (a worker's) is made available in another (the next worker's, or
the clone that aggregates a sweep) by two things: its outputs, pushed to the remote and
pulled by content hash, and its `dvc.lock` entry (command, deps' and params' hashes, the
outputs' hashes), carried as data and merged into the other clone's lock file. With both in
place DVC sees the stage as up to date there (same code, params and inputs give the same
hashes), so `dvc repro` does not run it again. DVC's run-cache would do this by itself, but
it skips stages with `persist: true` outputs, which every stage here has.

Stage addresses are DVC's: `oracle`, `comparison/dvc.yaml:train@synthetic-mle-0`.
"""
from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from .executables import executable
from .files import write_text

SWEEP_REMOTE = "seqgan-sweep"  # the name a remote given by URL gets in .dvc/config.local
LOCK_SCHEMA = "2.0"


def split_address(address: str) -> tuple[Path, str]:
    """(lock file, stage name) of a stage address."""
    dvcfile, _, name = address.rpartition(":")
    return Path(dvcfile or "dvc.yaml").with_name("dvc.lock"), name


def _read_lock(path: Path) -> dict:
    return (yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None) or {}


def lock_entry(address: str, root: Path = Path(".")) -> dict:
    """The stage's entry in its lock file (after it ran, or was found up to date)."""
    path, name = split_address(address)
    entry = _read_lock(root / path).get("stages", {}).get(name)
    if entry is None:
        raise KeyError(f"{root / path} has no entry for stage {name!r}: it never ran in this clone")
    return entry


def merge_lock_entries(entries: Mapping[str, dict], root: Path = Path(".")) -> None:
    """Write each stage's entry into this clone's lock files, keeping every other entry.
    Only while no DVC command runs in this clone (DVC rewrites lock files as it goes)."""
    by_file: dict[Path, dict[str, dict]] = {}
    for address, entry in entries.items():
        path, name = split_address(address)
        by_file.setdefault(root / path, {})[name] = entry
    for path, new in by_file.items():
        lock = _read_lock(path)
        lock.setdefault("schema", LOCK_SCHEMA)
        lock["stages"] = {**(lock.get("stages") or {}), **new}
        write_text(path, yaml.safe_dump(lock, sort_keys=False))


def remote_name(remote: str, root: Path = Path(".")) -> str:
    """A remote's name in this clone: `remote` itself when it names a configured remote (e.g.
    an S3 remote with its credentials set up in .dvc/config), else `remote` is a URL or path,
    configured here (.dvc/config.local, never committed) under the name `seqgan-sweep`."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        if remote in repo.config.get("remote", {}):
            return remote
        with repo.config.edit("local") as local:
            local.setdefault("remote", {})[SWEEP_REMOTE] = {"url": remote}
    return SWEEP_REMOTE


def _dvc(args: list[str], root: Path, what: str) -> str:
    result = subprocess.run([executable("dvc"), *args], cwd=root, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed (`dvc {' '.join(args)}`, exit {result.returncode}):\n{output[-3000:]}")
    return output


def pull(addresses: Iterable[str], remote: str, root: Path = Path(".")) -> None:
    """Fetch and check out the cached outputs of these stages (their lock entries must be here)."""
    if targets := list(addresses):
        _dvc(["pull", "--remote", remote, *targets], root, "pulling " + ", ".join(targets))


def push(addresses: Iterable[str], remote: str, root: Path = Path(".")) -> None:
    """Upload the cached outputs of these stages."""
    if targets := list(addresses):
        _dvc(["push", "--remote", remote, *targets], root, "pushing " + ", ".join(targets))


def outputs(address: str, root: Path = Path(".")) -> list[Path]:
    """The stage's declared outputs (paths relative to `root`)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        (stage,) = repo.stage.collect(address)
        return [Path(out.fs_path).resolve().relative_to(Path(repo.root_dir).resolve()) for out in stage.outs]


def stale(addresses: Iterable[str], root: Path = Path(".")) -> dict[str, object]:
    """`dvc status` of these stages alone: {} when each matches its lock entry here, else what
    differs per stage (e.g. a worker ran other code: its deps' hashes are not this clone's)."""
    import json

    if not (targets := list(addresses)):
        return {}
    return json.loads(_dvc(["status", "--json", *targets], root, "checking " + ", ".join(targets)) or "{}")
