"""Processes a local cluster starts, and how it stops exactly those.

Each service is recorded with its pid and the process's start time (psutil): a pid that the
system has since reused for something else is never signalled. A service started here leads
its own process group (it and the children it spawns: the MLflow server's workers, a Prefect
worker's flow runs), and stopping it signals that group, whose id is the recorded pid.
PostgreSQL is the exception: `pg_ctl` starts it as a daemon, and it is stopped by its
postmaster's pid alone (the postmaster stops its own children).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil


class ClusterError(RuntimeError):
    """A service that would not start, with the cause and the tail of its log."""


@dataclass(frozen=True)
class Service:
    name: str
    pid: int
    started: float  # psutil's create_time: tells this process from a later one with the same pid
    log: str
    group: bool = True  # signal the process group led by pid (False: the pid alone)

    def to_dict(self) -> dict:
        return asdict(self)

    def alive(self) -> bool:
        try:
            proc = psutil.Process(self.pid)
            return abs(proc.create_time() - self.started) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: str | Path, n: int = 40) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError as exc:
        return f"<no log: {exc}>"


def record(name: str, pid: int, log: Path, *, group: bool) -> Service:
    return Service(name, pid, psutil.Process(pid).create_time(), str(log), group)


def spawn(name: str, argv: list[str], *, env: dict[str, str], cwd: Path, log: Path) -> Service:
    """Start `argv` in its own session (so its process group is its own), output to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    return record(name, proc.pid, log, group=True)


def wait_http(service: Service, url: str, timeout_s: float) -> None:
    """Until `url` answers 200; fails early if the service exits."""
    deadline = time.monotonic() + timeout_s
    while True:
        if not service.alive():
            raise ClusterError(f"{service.name} exited while starting; its log ({service.log}):\n{tail(service.log)}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise ClusterError(f"{service.name} not answering {url} after {timeout_s:.0f} s; "
                               f"its log ({service.log}):\n{tail(service.log)}")
        time.sleep(0.5)


def _signal(service: Service, sig: signal.Signals) -> None:
    try:
        if service.group:
            os.killpg(service.pid, sig)
        else:
            os.kill(service.pid, sig)
    except ProcessLookupError:
        pass


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid:
                members.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return members


def _descendants(service: Service) -> list[psutil.Process]:
    """Its children and theirs, wherever their group: a Prefect worker starts each flow run
    in a session of its own."""
    try:
        return psutil.Process(service.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _send_all(processes: list[psutil.Process], sig: signal.Signals) -> None:
    for proc in processes:
        try:
            if proc.is_running():  # pid and start time: never a later process with that pid
                proc.send_signal(sig)
        except psutil.NoSuchProcess:
            pass


def stop(service: Service, *, first: signal.Signals = signal.SIGTERM, grace_s: float = 20) -> bool:
    """Stop a recorded service and what it started: `first` (SIGTERM) to its group, then
    SIGKILL to whatever is left of the group and of its descendants after `grace_s`. Returns
    False when it was no longer running (or its pid now belongs to another process)."""
    if not service.alive():
        # The leader died and its children did not. Linux reuses no pid that still names a
        # process group, so a group with this id and no process of this pid is the leader's
        # own; a live process of this pid (another start time) means the pid was reused.
        if service.group and not psutil.pid_exists(service.pid) and _group_members(service.pid):
            _signal(service, signal.SIGKILL)
        return False
    descendants = _descendants(service) if service.group else []
    _signal(service, first)
    _send_all(descendants, first)  # a stage stopped by SIGTERM marks its MLflow run KILLED
    deadline = time.monotonic() + grace_s
    while (service.alive() or any(_running(p) for p in descendants)) and time.monotonic() < deadline:
        time.sleep(0.2)
    if service.alive() or (service.group and _group_members(service.pid)):
        _signal(service, signal.SIGKILL)
    _send_all(descendants, signal.SIGKILL)
    return True
