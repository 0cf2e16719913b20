"""A throwaway PostgreSQL server for a local cluster: MLflow's backend store and the
registry gate's advisory lock.

The distribution's server binaries (`initdb`, `pg_ctl`, `postgres`: on PATH, under
/usr/lib/postgresql/<version>/bin, or in SEQGAN_PG_BIN) refuse to run as root, so as root
they run as the `postgres` system user, on a data directory that user owns (under /tmp: a
root-owned temporary directory higher up would be unreadable to it). It listens on
127.0.0.1 only, with trust authentication: a local try, never a shared server (a real one
has passwords and TLS; see the README's "Sweeps on a cluster").
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .processes import ClusterError, Service, record, stop, tail

PG_BIN_ENV = "SEQGAN_PG_BIN"
SUPERUSER = "postgres"


def binaries() -> Path:
    """The folder holding initdb, pg_ctl and postgres."""
    candidates = [os.environ.get(PG_BIN_ENV, "")]
    if found := shutil.which("pg_ctl"):
        candidates.append(str(Path(found).resolve().parent))
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for folder in filter(None, candidates):
        if all((Path(folder) / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    raise ClusterError("PostgreSQL server binaries not found (initdb, pg_ctl, postgres): install the distribution's "
                       f"package (e.g. `apt-get install postgresql`) or set {PG_BIN_ENV} to their folder")


def _as_server_user(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the `postgres` system user."""
    if os.geteuid() != 0:
        return argv
    try:
        pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise ClusterError("running as root, and there is no `postgres` system user to run PostgreSQL as "
                           "(`useradd --system postgres`, or start the cluster as an ordinary user)") from None
    return ["runuser", "-u", SUPERUSER, "--", *argv]


def check() -> None:
    """Raise ClusterError, with the fix, when no PostgreSQL server can be started here."""
    binaries()
    _as_server_user([])


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(_as_server_user(argv), capture_output=True, text=True, timeout=300,
                            stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise ClusterError(f"{what} failed (exit {result.returncode}):\n{(result.stdout + result.stderr)[-3000:]}")


@dataclass(frozen=True)
class Postgres:
    service: Service
    port: int
    folder: Path  # data directory and log; removed by `remove`

    def dsn(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"


def start(port: int, database: str) -> Postgres:
    """initdb a fresh data directory, start the server on 127.0.0.1:`port`, create `database`."""
    bin_dir = binaries()
    folder = Path(tempfile.mkdtemp(prefix="seqgan-postgres-"))
    data, log = folder / "data", folder / "postgres.log"
    if os.geteuid() == 0:
        account = pwd.getpwnam(SUPERUSER)
        os.chown(folder, account.pw_uid, account.pw_gid)
    _run([str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C"],
         "initdb")
    # -k '': no Unix socket (TCP on 127.0.0.1 only); pg_ctl passes -o through a shell.
    _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "120",
          "-o", f"-p {port} -h 127.0.0.1 -k ''", "start"], f"starting PostgreSQL (log {log})")
    pid = int((data / "postmaster.pid").read_text().splitlines()[0])
    server = Postgres(record("postgres", pid, log, group=False), port, folder)
    try:
        _create_database(server, database)
    except BaseException:
        stop_server(server.service)
        raise
    return server


def _create_database(server: Postgres, database: str) -> None:
    import psycopg2

    deadline = time.monotonic() + 60
    while True:
        try:
            connection = psycopg2.connect(server.dsn("postgres"), connect_timeout=5)
            break
        except psycopg2.OperationalError as exc:
            if time.monotonic() > deadline:
                raise ClusterError(f"PostgreSQL not accepting connections: {exc}\n{tail(server.service.log)}") from None
            time.sleep(0.5)
    connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction block
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{database}"')
    finally:
        connection.close()


def stop_server(service: Service) -> bool:
    """Fast shutdown (SIGINT: open sessions are ended), then SIGQUIT's immediate one."""
    return stop(service, first=signal.SIGINT, grace_s=30)


def remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
