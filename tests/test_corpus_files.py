"""A user's own corpus file as editors and exporters write it: a UTF-8 byte-order mark,
Windows or old-Mac line ends, Unicode line separators inside a line, NUL bytes (a UTF-16 or
binary file that happens to decode as UTF-8), a file with no usable line. Each is read as the
text it holds, or refused in one line naming the cause; none may turn into tokens or extra
sequences silently."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from seqgan_core.corpus import tokenize


def read(tmp_path: Path, data: bytes) -> list[str]:
    from pipelines.stages.preprocess import read_lines

    path = tmp_path / "corpus.txt"
    path.write_bytes(data)
    return read_lines(path)


def test_a_byte_order_mark_is_not_a_token(tmp_path: Path) -> None:
    # Notepad and many exporters start UTF-8 files with U+FEFF; it was the first line's first
    # char token ('\ufeff') or glued to its first word ('\ufeffhello'), a vocabulary entry of its own.
    lines = read(tmp_path, "\ufeffhello world\nfoo\n".encode())
    assert lines == ["hello world", "foo"]
    assert tokenize(lines[0], "whitespace") == ["hello", "world"]


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
def test_line_ends_leave_no_carriage_return(tmp_path: Path, end: bytes) -> None:
    assert read(tmp_path, end.join([b"ab cd", b"", b"ef"]) + end) == ["ab cd", "", "ef"]


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"])
def test_unicode_line_separators_do_not_split_a_sequence(tmp_path: Path, separator: str) -> None:
    # str.splitlines() breaks on these too: one line of the file became two sequences (and
    # `lines_read` disagreed with `wc -l`). A line is what ends in \n, \r\n or \r; inside it
    # these characters are whitespace, so the tokenizers drop them.
    lines = read(tmp_path, f"one{separator}two\nthree\n".encode())
    assert lines == [f"one{separator}two", "three"]
    assert tokenize(lines[0], "char") == list("onetwo")
    assert tokenize(lines[0], "whitespace") == ["one", "two"]


@pytest.mark.parametrize("data", [
    "hello\nworld\n".encode("utf-16-le"),  # UTF-16 without a BOM is valid UTF-8, NULs between letters
    b"ab\ncd\x00ef\n",
    b"\x00" * 100,
], ids=["utf-16", "one-nul", "all-nul"])
def test_nul_bytes_are_refused_in_one_line(tmp_path: Path, data: bytes) -> None:
    # They decoded as UTF-8 and became the most frequent char token (or hid inside words).
    from pipelines.runtime import StageError

    with pytest.raises(StageError, match=r"NUL byte on line \d+.*UTF-16 or binary.*convert it to UTF-8") as error:
        read(tmp_path, data)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("data, overlong, cause", [
    (b"", "drop", r"0 line\(s\) read, 0 blank, 0 longer .* point corpus.path at a text file"),
    (b"\n \n\t\n", "drop", r"3 line\(s\) read, 3 blank, 0 longer .* point corpus.path at a text file"),
    (b"x" * 100_000 + b"\n", "drop", r"1 line\(s\) read, 0 blank, 1 longer than corpus.max_len=20; raise corpus.max_len"),
], ids=["empty", "blank", "one-huge-line"])
def test_a_corpus_with_no_usable_line_says_why(tmp_path: Path, data: bytes, overlong: str, cause: str) -> None:
    # The corpus gate listed three failures and hinted "raise corpus.vocab_size" (coverage of
    # 0 of 0 tokens): the wrong fix for an empty file.
    import subprocess
    import sys

    import yaml

    from conftest import REPO_ROOT, stage_env

    raw = yaml.safe_load((REPO_ROOT / "profiles/tiny.yaml").read_text())
    raw["corpus"].update(path="corpus.txt", overlong=overlong)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / "corpus.txt").write_bytes(data)
    env = {**stage_env(tmp_path), "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-m", "pipelines.stages.preprocess"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "vocab_size" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "corpus.txt" in line]
    assert re.search(r"'corpus.txt' has no line to train on: " + cause, line), result.stderr
