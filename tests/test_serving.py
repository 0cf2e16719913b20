"""Serving the registered generator: `seqgan generate` and `mlflow models serve` (local env)
against the tiny pipeline's MLflow store (session fixture `pipeline_repo`)."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import free_port, stage_env, stop_process_group

pytestmark = pytest.mark.slow

URI = "models:/seqgan-generator@challenger"
BIN = Path(sys.executable).parent
VOCAB, SEQ_LEN = 60, 10  # the tiny profile's oracle


def seqgan(root: Path, *args: str) -> subprocess.CompletedProcess:
    exe = BIN / "seqgan"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "pipelines.cli"]
    return subprocess.run([*cmd, *args], cwd=root, env=stage_env(root), capture_output=True, text=True, timeout=300)


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
    (("--model", URI, "--temperature", "0"), "'0' is not a finite number > 0"),
    (("--model", URI, "--prefix", "5 99999"), "outside the vocabulary"),
])
def test_generate_names_a_bad_request_without_a_traceback(pipeline_repo: Path, args, cause) -> None:
    result = seqgan(pipeline_repo, "generate", *args)
    assert result.returncode != 0 and cause in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr


def test_mlflow_models_serve_answers_invocations(pipeline_repo: Path, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "mlflow"), "models", "serve", "-m", URI, "--env-manager", "local",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=pipeline_repo, env=stage_env(pipeline_repo), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
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

        body = json.dumps({"dataframe_records": [{"n": 2, "temperature": 1.0, "seed": 0}]}).encode()
        request = urllib.request.Request(f"{base}/invocations", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 200
            payload = json.loads(response.read())
        predictions = payload["predictions"]
        assert len(predictions) == 2, payload
        for row in predictions:
            assert_token_ids(row["sequence"])
            assert row["text"] == row["sequence"]

        # The same seed gives the same sequences as `seqgan generate`.
        generated = seqgan(pipeline_repo, "generate", "--model", URI, "-n", "2", "--seed", "0")
        assert generated.stdout.splitlines() == [row["sequence"] for row in predictions]
    finally:
        stop_process_group(proc)
        log.close()
