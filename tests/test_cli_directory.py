"""`seqgan` commands run from the wrong folder: outside the repository they ended in DVC's
NotDvcRepoError traceback, and from a subfolder `seqgan stages` printed nothing and exited 0
(the stage files were looked for under the subfolder); `seqgan profile` said the profile did
not exist ("available: none"). Each now names the cause and the fix in one line."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import REPO_ROOT


def _run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    from pipelines.cli import main

    with pytest.raises(SystemExit) as stop:
        main(argv)
    return stop.value.code, capsys.readouterr().err


@pytest.mark.parametrize("argv", [["stages"], ["stages", "--pipeline", "comparison"], ["sweep"]])
def test_outside_the_repository_is_one_line(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, err = _run(argv, capsys)
    assert code == 1
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "not inside a DVC repository" in err and "run from the repository root" in err


def test_stages_from_a_subfolder_is_refused_not_empty(capsys: pytest.CaptureFixture,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT / "data")
    code, err = _run(["stages"], capsys)
    assert code == 1
    assert f"run from the repository root ({REPO_ROOT.resolve()})" in err


def test_profile_from_another_folder_names_the_folder(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, err = _run(["profile", "tiny"], capsys)
    assert code == 1
    assert "no profiles/ folder in" in err and "run from the repository root" in err
    assert not (tmp_path / "params.yaml").exists()


def test_params_check_of_the_wrong_file_keeps_each_problem_to_a_line(capsys: pytest.CaptureFixture,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # `seqgan params check --file dvc.yaml` printed the whole `stages:` section (~6,000 characters)
    # as the unknown key's value.
    monkeypatch.chdir(REPO_ROOT)
    code, err = _run(["params", "check", "--file", "dvc.yaml"], capsys)
    assert code == 1
    assert "stages: unknown key" in err
    assert max(len(line) for line in err.splitlines()) < 200
