"""Great Expectations gates (pipelines.validation), run against real GX: token arrays and the
preprocessed corpus pass when valid and fail with a readable, structured DataValidationError."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.validation import DataValidationError, validate_corpus, validate_token_sequences

ROOT = Path(__file__).resolve().parents[1]
VOCAB, SEQ_LEN, ROWS = 2000, 20, 10_000
FAILURE_KEYS = {"expectation", "column", "kwargs", "description", "unexpected_count", "element_count",
                "observed_value", "examples", "example_rows", "exception"}


@pytest.fixture(scope="module", autouse=True)
def gx_warm():
    """Import GX and build the cached context once for the whole module (6-9 s on 2 cores)."""
    started = time.perf_counter()
    validate_token_sequences(np.zeros((2, 3), dtype=np.int64), suite="warmup", vocab_size=2, seq_len=3)
    return time.perf_counter() - started


@pytest.fixture(scope="module")
def tokens() -> np.ndarray:
    return np.random.default_rng(0).integers(0, VOCAB, size=(ROWS, SEQ_LEN))


def corpus_frame(n_train: int = 40, n_test: int = 8, unknown_every: int = 0) -> pd.DataFrame:
    rows = []
    for i in range(n_train + n_test):
        text = f"line number {i}"
        n_tokens = len(text)
        n_unknown = 1 if unknown_every and i % unknown_every == 0 else 0
        rows.append({"split": "train" if i < n_train else "test", "n_tokens": n_tokens,
                     "n_unknown": n_unknown, "text": text})
    return pd.DataFrame(rows)


CORPUS_BOUNDS = dict(max_len=20, min_coverage=0.9, min_train=10, min_test=5)


def fail(fn, *args, **kwargs) -> DataValidationError:
    with pytest.raises(DataValidationError) as info:
        fn(*args, **kwargs)
    return info.value


def failed_types(error: DataValidationError) -> list[str]:
    return [f["expectation"] for f in error.failures]


# ------------------------------------------------------------------------ import cost
def test_import_does_not_load_great_expectations():
    code = ("import sys; import pipelines.validation as v; v.DataValidationError; "
            "print('great_expectations' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------ token arrays
def test_valid_tokens_pass(tokens):
    summary = validate_token_sequences(tokens, suite="oracle_samples", vocab_size=VOCAB, seq_len=SEQ_LEN,
                                       expected_rows=ROWS)
    assert summary["suite"] == "oracle_samples"
    assert summary["rows"] == ROWS and summary["success"] is True
    assert summary["evaluated_expectations"] == 4
    assert 0 <= summary["min_token_id"] <= summary["max_token_id"] < VOCAB
    json.dumps(summary)


def test_min_rows_and_edge_ids_pass():
    edge = np.array([[0] * SEQ_LEN, [VOCAB - 1] * SEQ_LEN])
    summary = validate_token_sequences(edge, suite="edge", vocab_size=VOCAB, seq_len=SEQ_LEN, min_rows=2)
    assert summary["rows"] == 2


def test_validation_writes_no_progress_bars(tokens, capfd):
    validate_token_sequences(tokens, suite="quiet", vocab_size=VOCAB, seq_len=SEQ_LEN)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_out_of_range_ids_fail_with_count_and_examples(tokens):
    bad = tokens.copy()
    bad[3, 4], bad[7, 1], bad[11, 0] = VOCAB, VOCAB + 500, -1
    error = fail(validate_token_sequences, bad, suite="generated", vocab_size=VOCAB, seq_len=SEQ_LEN)
    message = str(error)
    assert error.suite == "generated"
    assert message.startswith("data validation failed: suite 'generated': 2 of 4 expectation(s) failed")
    assert "expect_column_values_to_be_between(column=max_token_id, max_value=1999)" in message
    assert "2 of 10000 rows failed; examples: 2000 (row 3), 2500 (row 7)" in message
    assert "1 of 10000 rows failed; examples: -1 (row 11)" in message
    assert f"vocab_size={VOCAB}" in message
    assert message.rstrip().endswith("earlier outputs are untouched.")
    high = next(f for f in error.failures if f["column"] == "max_token_id")
    assert high["unexpected_count"] == 2 and high["element_count"] == ROWS
    assert high["examples"] == [2000, 2500]


def test_examples_are_capped_at_five(tokens):
    bad = tokens.copy()
    bad[:20, 0] = VOCAB + 1
    error = fail(validate_token_sequences, bad, suite="generated", vocab_size=VOCAB, seq_len=SEQ_LEN)
    (failure,) = error.failures
    assert failure["unexpected_count"] == 20 and len(failure["examples"]) == 5
    assert "20 of 10000 rows failed" in str(error)


def test_missing_tokens_fail(tokens):
    bad = tokens.astype(float)
    bad[5, 5] = np.nan
    error = fail(validate_token_sequences, bad, suite="generated", vocab_size=VOCAB, seq_len=SEQ_LEN)
    assert failed_types(error) == ["expect_column_values_to_not_be_null"]
    assert "1 of 10000 rows failed" in str(error) and "row 5" in str(error)


@pytest.mark.parametrize("shape", [(ROWS, SEQ_LEN - 1), (ROWS * SEQ_LEN,), (10, SEQ_LEN, 2)])
def test_wrong_shape_fails_clearly(shape):
    error = fail(validate_token_sequences, np.zeros(shape, dtype=np.int64), suite="train_split",
                 vocab_size=VOCAB, seq_len=SEQ_LEN)
    message = str(error)
    assert failed_types(error) == ["array_shape"]
    assert "x".join(map(str, shape)) in message and f"expected (n, {SEQ_LEN})" in message
    assert error.failures[0]["observed_value"] == list(shape)


def test_wrong_row_count_fails_clearly(tokens):
    error = fail(validate_token_sequences, tokens[:999], suite="oracle_samples", vocab_size=VOCAB,
                 seq_len=SEQ_LEN, expected_rows=1000)
    assert failed_types(error) == ["expect_table_row_count_to_equal"]
    assert "expect_table_row_count_to_equal(value=1000)" in str(error) and "observed 999" in str(error)
    assert error.failures[0]["observed_value"] == 999

    error = fail(validate_token_sequences, tokens[:0], suite="generated", vocab_size=VOCAB,
                 seq_len=SEQ_LEN, min_rows=64)
    assert failed_types(error) == ["expect_table_row_count_to_be_between"]
    assert "min_value=64" in str(error) and "observed 0" in str(error)


def test_failures_are_structured_and_portable(tokens):
    bad = tokens.copy()
    bad[0, 0] = VOCAB
    error = fail(validate_token_sequences, bad, suite="generated", vocab_size=VOCAB, seq_len=SEQ_LEN,
                 expected_rows=ROWS + 1)
    assert isinstance(error, RuntimeError)
    assert all(FAILURE_KEYS <= set(f) for f in error.failures)
    by_type = {f["expectation"]: f for f in error.failures}
    assert by_type["expect_table_row_count_to_equal"]["kwargs"] == {"value": ROWS + 1}
    ids = by_type["expect_column_values_to_be_between"]
    assert ids["column"] == "max_token_id" and ids["kwargs"] == {"max_value": VOCAB - 1}
    assert ids["example_rows"] == [{"max_token_id": VOCAB, "row": 0}]
    json.dumps(error.failures)  # plain Python values, ready for a report file
    clone = pickle.loads(pickle.dumps(error))
    assert str(clone) == str(error) and clone.failures == error.failures and clone.suite == error.suite


# ------------------------------------------------------------------------------ corpus
def test_valid_corpus_passes():
    summary = validate_corpus(corpus_frame(unknown_every=10), **CORPUS_BOUNDS)
    assert summary["success"] is True and summary["suite"] == "corpus"
    assert (summary["rows"], summary["train_rows"], summary["test_rows"]) == (48, 40, 8)
    assert summary["unknown"] == 5
    assert summary["coverage"] == pytest.approx(1 - 5 / summary["tokens"])
    assert summary["evaluated_expectations"] == 10


def test_empty_line_fails():
    frame = corpus_frame()
    frame.loc[2, ["n_tokens", "text"]] = [0, ""]
    error = fail(validate_corpus, frame, **CORPUS_BOUNDS)
    assert failed_types(error) == ["expect_column_values_to_be_between"]
    message = str(error)
    assert "no empty lines" in message and "1 of 48 rows failed; examples: 0 ('')" in message


def test_overlong_line_fails():
    frame = corpus_frame()
    frame.loc[4, ["n_tokens", "text"]] = [31, "an extremely long line of thirty-one"]
    error = fail(validate_corpus, frame, **CORPUS_BOUNDS)
    assert failed_types(error) == ["expect_column_values_to_be_between"]
    message = str(error)
    assert "expect_column_values_to_be_between(column=n_tokens, max_value=20)" in message
    assert "corpus.max_len=20" in message and "31 ('an extremely long line" in message
    assert error.failures[0]["examples"] == [31]


def test_too_few_test_rows_fails():
    error = fail(validate_corpus, corpus_frame(n_test=2), **CORPUS_BOUNDS)
    assert failed_types(error) == ["expect_table_row_count_to_be_between"]
    message = str(error)
    assert "at least 5 test lines" in message and "observed 2" in message
    assert "corpus.test_fraction" in message
    assert error.failures[0]["kwargs"] == {"min_value": 5, "row_condition": "split == 'test'"}


def test_bad_split_value_fails():
    frame = corpus_frame()
    frame.loc[0, "split"] = "dev"
    error = fail(validate_corpus, frame, **CORPUS_BOUNDS)
    assert "expect_column_values_to_be_in_set" in failed_types(error)
    assert "examples: dev ('line number 0')" in str(error)


def test_low_coverage_fails_with_measured_value_and_bound():
    frame = corpus_frame()
    frame["n_unknown"] = 3  # 3 of ~14 tokens per line are <unk>: coverage ~0.79
    error = fail(validate_corpus, frame, **CORPUS_BOUNDS)
    assert failed_types(error) == ["expect_column_min_to_be_between"]
    coverage = 1 - frame["n_unknown"].sum() / frame["n_tokens"].sum()
    message = str(error)
    assert f"measured coverage {coverage:.4f}" in message and "corpus.min_coverage=0.9" in message
    assert "raise corpus.vocab_size" in message and "lower corpus.min_coverage" in message
    assert error.failures[0]["observed_value"] == pytest.approx(coverage)


def test_missing_columns_fail():
    error = fail(validate_corpus, corpus_frame().drop(columns=["n_unknown"]), **CORPUS_BOUNDS)
    assert failed_types(error) == ["frame_columns"] and "n_unknown" in str(error)


def test_messages_fit_a_terminal():
    frame = corpus_frame(n_test=1)
    frame.loc[0, ["n_tokens", "text"]] = [99, "x" * 500]
    frame.loc[1, "n_tokens"] = 0
    frame["n_unknown"] = 5
    error = fail(validate_corpus, frame, **CORPUS_BOUNDS)
    # empty, over-long, n_unknown > n_tokens (on the empty line), too few test lines, coverage
    assert len(error.failures) == 5
    lines = str(error).splitlines()
    assert len(lines) < 20 and max(map(len, lines)) < 200
