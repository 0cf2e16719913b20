"""Input mistakes a stage meets before any work: a folder where a file belongs, a Ctrl-C.
Each gets one line naming the cause (these ended in IsADirectoryError tracebacks, or
"stopped: ;")."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import REPO_ROOT


def test_a_corpus_path_that_is_a_folder_is_named(tmp_path: Path) -> None:
    from pipelines.runtime import StageError
    from pipelines.stages.preprocess import read_lines

    with pytest.raises(StageError, match="corpus.path = .* is a folder; point it at the text file inside it"):
        read_lines(tmp_path)


def test_oracle_weights_that_are_a_folder_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from pipelines.config import parse_params
    from pipelines.runtime import StageError
    from pipelines.stages.oracle import build_oracle

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/oracle/weights").mkdir(parents=True)
    raw = yaml.safe_load((REPO_ROOT / "profiles/tiny.yaml").read_text())
    raw["oracle"]["weights_file"] = "data/oracle/weights"
    with pytest.raises(StageError, match="'data/oracle/weights' is a folder; name the npz file inside it"):
        build_oracle(parse_params(raw), torch.device("cpu"))


def test_ctrl_c_says_it_was_interrupted(capsys: pytest.CaptureFixture) -> None:
    from pipelines.runtime import run_main

    def interrupted() -> None:
        raise KeyboardInterrupt  # what Ctrl-C raises: no message of its own

    with pytest.raises(SystemExit) as stop:
        run_main(interrupted)
    assert stop.value.code == 130
    assert capsys.readouterr().err.startswith("stopped: interrupted; the next `dvc repro` resumes")


def test_outputs_get_the_mode_of_any_new_file(tmp_path: Path) -> None:
    # mkstemp's 0600 used to survive the rename: metrics, models and data were owner-only
    # whatever the umask let other files be.
    from pipelines.files import write_text

    (tmp_path / "plain").write_text("x")
    write_text(tmp_path / "output.txt", "x")
    assert (tmp_path / "output.txt").stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777
