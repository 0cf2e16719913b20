"""Serving the registered generator: `seqgan generate` and `mlflow models serve` (local env)
against the tiny pipeline's MLflow store (session fixture `pipeline_repo`)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import free_port, seqgan_command, stage_env
from pipelines.serving import stop_group

pytestmark = pytest.mark.slow

URI = "models:/seqgan-generator@challenger"
VOCAB, SEQ_LEN = 60, 10  # the tiny profile's oracle


def seqgan(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*seqgan_command(), *args], cwd=root, env=stage_env(root), capture_output=True, text=True, timeout=300)


def assert_token_ids(line: str) -> None:
    ids = [int(t) for t in line.split()]
    assert len(ids) == SEQ_LEN and all(0 <= i < VOCAB for i in ids), line


def test_generate_prints_n_sequences_reproducibly(pipeline_repo: Path) -> None:
    first = seqgan(pipeline_repo, "generate", "--model", URI, "-n", "3", "--seed", "0")
    assert first.returncode == 0, first.stderr[-3000:]
    lines = first.stdout.splitlines()
    assert len(lines) == 3, first.stdout
    for line in lines:
        assert_token_ids(line)
    again = seqgan(pipeline_repo, "generate", "--model", URI, "-n", "3", "--seed", "0")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout == first.stdout


@pytest.mark.parametrize("args, cause", [
    (("--model", "models:/no-such-model@champion"), "cannot load models:/no-such-model@champion"),
    (("--model", URI, "-n", "-5"), "'-5' is not a whole number >= 1"),
    (("--model", URI, "-n", "2.7"), "'2.7' is not a whole number >= 1"),
    (("--model", URI, "--temperature", "0"), "'0': temperature must be a finite number >= 0.001"),
    (("--model", URI, "--prefix", "5 99999"), "outside the vocabulary"),
])
def test_generate_names_a_bad_request_without_a_traceback(pipeline_repo: Path, args, cause) -> None:
    result = seqgan(pipeline_repo, "generate", *args)
    assert result.returncode != 0 and cause in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr


def post(base: str, rows: list[dict]) -> tuple[int, dict]:
    body = json.dumps({"dataframe_records": rows}).encode()
    request = urllib.request.Request(f"{base}/invocations", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc): `seqgan serve`'s mlflow and its uvicorn."""
    found: set[int] = set()
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in map(int, children.read_text().split()):
            found |= {child} | descendants(child)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"  # a zombie is gone, awaiting its parent


def test_seqgan_serve_answers_refuses_with_the_cause_and_stops_cleanly(pipeline_repo: Path, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([*seqgan_command(), "serve", "--model", URI, "--port", str(port)], cwd=pipeline_repo,
                            env=stage_env(pipeline_repo), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, f"server exited ({proc.returncode}):\n{(tmp_path / 'serve.log').read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, f"no /ping in 90 s:\n{(tmp_path / 'serve.log').read_text()[-3000:]}"
            time.sleep(1)

        status, payload = post(base, [{"n": 2, "temperature": 1.0, "seed": 0}])
        assert status == 200
        predictions = payload["predictions"]
        assert len(predictions) == 2, payload
        for row in predictions:
            assert_token_ids(row["sequence"])
            assert row["text"] == row["sequence"]
        # The same seed gives the same sequences as `seqgan generate`.
        generated = seqgan(pipeline_repo, "generate", "--model", URI, "-n", "2", "--seed", "0")
        assert generated.stdout.splitlines() == [row["sequence"] for row in predictions]

        # A bad request is HTTP 400 naming its cause, with no stack trace (before: "unexpected
        # error" and the server's stack trace; n = 2.7 was silently served as 2).
        for rows, cause in (([{"n": 2.7}], "n must be a whole number >= 1, got 2.7"),
                            ([{"n": -1}], "n must be a whole number >= 1, got -1"),
                            ([{"n": 60_000}, {"n": 60_000}], "for the whole request (all rows together), got 120000"),
                            ([{"n": 1, "temperature": 0}], "temperature must be a finite number >= 0.001"),
                            ([{"n": 2, "temperature": 1e-300}], "use 0.001 for near-greedy sampling"),
                            ([{"n": 2, "seed": 2**64}], "seed must be a whole number in [0, 9223372036854775808)"),
                            ([{"n": 2, "seed": 1e30}], "seed must be a whole number in [0, 9223372036854775808)")):
            status, payload = post(base, rows)
            assert status == 400 and cause in payload["message"], payload
            assert "stack_trace" not in payload and payload["error_code"] == "INVALID_PARAMETER_VALUE"
    finally:
        server = descendants(proc.pid)
        proc.send_signal(signal.SIGTERM)  # as a scheduler or `kill` stops it
        try:
            proc.wait(timeout=30)
        finally:
            stop_group(proc)
            log.close()
    # Nothing of the server is left: none of its processes, and nothing listens on the port
    # (SO_REUSEADDR, as a restarted server binds: closed connections may linger in TIME_WAIT).
    assert proc.returncode == 128 + signal.SIGTERM
    assert server and not [pid for pid in server if alive(pid)]
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()
