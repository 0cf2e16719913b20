"""`seqgan serve`: `mlflow models serve` in its own process group, stopped as a whole.

`mlflow models serve` runs the scoring server (uvicorn) as a child process; a SIGTERM to the
`mlflow` process alone can leave that child holding the port. Here the server runs in a
new session, and Ctrl-C or SIGTERM to `seqgan serve` stops the whole group: SIGTERM first,
SIGKILL for what is left after a grace period. The exit code is the server's.
"""
from __future__ import annotations

import os
import signal
import subprocess

from .executables import executable

GRACE_S = 10.0


def stop_group(proc: subprocess.Popen, grace_s: float = GRACE_S) -> None:
    """SIGTERM the process group led by ``proc``, then SIGKILL whatever outlives ``grace_s``."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, grace_s)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        try:  # the leader is gone; children may not be
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return


class _Stop(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop(signum: int, frame: object) -> None:
    # Raise, and wait for the server outside the handler: a wait inside it would meet the
    # interrupted `proc.wait()`'s lock and never see the server go.
    raise _Stop(signum)


def serve(model_uri: str, *, host: str = "127.0.0.1", port: int = 5001, workers: int = 1) -> int:
    from .tracking import tracking_uri

    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri()}
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    proc = subprocess.Popen(
        [executable("mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
         "--host", host, "--port", str(port), "--workers", str(workers)],
        env=env, start_new_session=True,
    )
    try:
        return proc.wait()
    except _Stop as stop:
        return 128 + stop.signum
    finally:
        stop_group(proc)
