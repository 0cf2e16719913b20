"""Corpus handling: tokenisation, stable vocabulary ids, encoding rules, seeded split,
and the committed quatrain corpus."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqgan_core.corpus import (
    EOS,
    EOS_ID,
    UNK,
    UNK_ID,
    EncodeReport,
    Vocabulary,
    encode_corpus,
    split_train_test,
    tokenize,
)

ROOT = Path(__file__).resolve().parents[1]
QUATRAINS = ROOT / "data" / "corpora" / "quatrains5.txt"

CORPUS = [
    "the cat sat on the mat".split(),
    "the dog sat".split(),
    "a cat and a dog".split(),
]


def test_tokenize_modes() -> None:
    assert tokenize(" 床前 明月光\t", "char") == ["床", "前", "明", "月", "光"]
    assert tokenize("  the  Cat\tsat \n", "whitespace") == ["the", "Cat", "sat"]
    assert tokenize("   ", "char") == [] and tokenize("", "whitespace") == []
    with pytest.raises(ValueError):
        tokenize("x", "bpe")  # type: ignore[arg-type]


def test_ids_sorted_by_count_then_token() -> None:
    vocab = Vocabulary.build(CORPUS)
    # the:3; a, cat, dog, sat:2 (alphabetical); and, mat, on:1 (alphabetical)
    assert vocab.tokens == (EOS, UNK, "the", "a", "cat", "dog", "sat", "and", "mat", "on")


def test_ids_independent_of_input_order() -> None:
    reordered = [list(reversed(seq)) for seq in reversed(CORPUS)]
    assert Vocabulary.build(reordered) == Vocabulary.build(CORPUS)


def test_ids_independent_of_hash_seed() -> None:
    script = (
        "from seqgan_core.corpus import Vocabulary;"
        "import sys;"
        "sys.stdout.write(Vocabulary.build([list('abcdefghij' * 2 + 'klmnop'), ['x', 'y', 'z']]).to_json())"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("0", "1", "12345")
    }
    assert len(outputs) == 1


def test_specials_fixed() -> None:
    assert (EOS_ID, UNK_ID) == (0, 1)
    for vocab in (Vocabulary.build([]), Vocabulary.build(CORPUS), Vocabulary.build(CORPUS, max_size=2)):
        assert vocab.tokens[:2] == (EOS, UNK)
        assert vocab.encode([EOS, UNK]) == [EOS_ID, UNK_ID]
    # Literal special strings in the text map to the specials, never to new ids.
    vocab = Vocabulary.build([["<unk>", "z", "<eos>"]])
    assert vocab.tokens == (EOS, UNK, "z")
    with pytest.raises(ValueError):
        Vocabulary(["the", EOS, UNK])


def test_max_size_cap_and_unk() -> None:
    vocab = Vocabulary.build(CORPUS, max_size=5)
    assert len(vocab) == 5
    assert vocab.tokens == (EOS, UNK, "the", "a", "cat")
    assert vocab.encode(["the", "dog", "cat", "zebra"]) == [2, UNK_ID, 4, UNK_ID]
    assert "dog" not in vocab and "cat" in vocab
    with pytest.raises(ValueError):
        Vocabulary.build(CORPUS, max_size=1)


def test_min_count() -> None:
    vocab = Vocabulary.build(CORPUS, min_count=2)
    assert vocab.tokens == (EOS, UNK, "the", "a", "cat", "dog", "sat")
    assert len(Vocabulary.build(CORPUS, max_size=4, min_count=2)) == 4


def test_coverage() -> None:
    vocab = Vocabulary.build(CORPUS, max_size=3)  # only "the"
    assert vocab.coverage(CORPUS) == pytest.approx(3 / 14)
    assert Vocabulary.build(CORPUS).coverage(CORPUS) == 1.0
    assert vocab.coverage([]) == 1.0


def test_encode_decode_round_trip() -> None:
    vocab = Vocabulary.build(CORPUS)
    for sequence in CORPUS:
        assert vocab.decode(vocab.encode(sequence)) == sequence
    # decode stops at the first <eos>; ids may be numpy integers (rows of encoded arrays)
    ids = np.array(vocab.encode(["the", "cat"]) + [EOS_ID, vocab.encode(["dog"])[0]], dtype=np.int64)
    assert vocab.decode(ids) == ["the", "cat"]
    assert vocab.decode([UNK_ID]) == [UNK]
    with pytest.raises(ValueError):
        vocab.decode([len(vocab)])


def test_json_round_trip(tmp_path: Path) -> None:
    vocab = Vocabulary.build([tokenize("床前明月光疑是地上霜", "char"), ['"quoted"', "back\\slash"]])
    text = vocab.to_json()
    assert Vocabulary.from_json(text) == vocab
    assert Vocabulary.from_json(text).to_json() == text
    assert "床" in text  # written as itself, not \u escapes
    path = tmp_path / "vocab.json"
    vocab.save(path)
    loaded = Vocabulary.load(path)
    assert loaded == vocab and loaded.tokens == vocab.tokens


def test_eos_and_padding() -> None:
    vocab = Vocabulary.build([list("abcd")])
    a, b, c, d = vocab.encode("abcd")
    array, report = encode_corpus([list("ab"), list("abcd"), list("abc")], vocab, max_len=4)
    assert array.dtype == np.int64 and array.shape == (3, 4)
    assert array.tolist() == [
        [a, b, EOS_ID, EOS_ID],  # shorter: <eos> then <eos> padding
        [a, b, c, d],  # exactly max_len: no <eos>
        [a, b, c, EOS_ID],  # max_len - 1: just the <eos>
    ]
    assert report == EncodeReport(kept=3, dropped_empty=0, dropped_overlong=0, truncated=0)


def test_overlong_drop_vs_truncate() -> None:
    vocab = Vocabulary.build([list("abcdef")])
    sequences = [list("abcdef"), list("ab")]
    dropped, report = encode_corpus(sequences, vocab, max_len=4)
    assert dropped.tolist() == [vocab.encode("ab") + [EOS_ID, EOS_ID]]
    assert report == EncodeReport(kept=1, dropped_empty=0, dropped_overlong=1, truncated=0)

    truncated, report = encode_corpus(sequences, vocab, max_len=4, overlong="truncate")
    assert truncated.tolist() == [vocab.encode("abcd"), vocab.encode("ab") + [EOS_ID, EOS_ID]]
    assert report == EncodeReport(kept=2, dropped_empty=0, dropped_overlong=0, truncated=1)

    with pytest.raises(ValueError):
        encode_corpus(sequences, vocab, max_len=4, overlong="wrap")  # type: ignore[arg-type]


def test_empty_lines_dropped() -> None:
    vocab = Vocabulary.build(CORPUS)
    lines = ["the cat", "", "   ", "dog"]
    array, report = encode_corpus([tokenize(line, "whitespace") for line in lines], vocab, max_len=3)
    assert array.shape == (2, 3)
    assert report == EncodeReport(kept=2, dropped_empty=2, dropped_overlong=0, truncated=0)
    empty, report = encode_corpus([[]], vocab, max_len=3)
    assert empty.shape == (0, 3) and empty.dtype == np.int64
    assert report.dropped_empty == 1


def test_split_deterministic() -> None:
    array = np.arange(100, dtype=np.int64).reshape(50, 2)
    train, test = split_train_test(array, 0.2, seed=7)
    assert train.shape == (40, 2) and test.shape == (10, 2)
    # a partition of the rows, shuffled
    rows = sorted(map(tuple, np.concatenate([train, test]).tolist()))
    assert rows == sorted(map(tuple, array.tolist()))
    assert train[:, 0].tolist() != sorted(train[:, 0].tolist())
    again_train, again_test = split_train_test(array, 0.2, seed=7)
    assert np.array_equal(train, again_train) and np.array_equal(test, again_test)
    other_train, _ = split_train_test(array, 0.2, seed=8)
    assert not np.array_equal(train, other_train)
    assert array.tolist() == np.arange(100).reshape(50, 2).tolist()  # input untouched
    with pytest.raises(ValueError):
        split_train_test(array, 1.5, seed=0)


def test_committed_quatrains() -> None:
    assert QUATRAINS.is_file(), "data/corpora/quatrains5.txt is missing: run data/corpora/build_quatrains.py"
    lines = QUATRAINS.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == ""  # newline-terminated
    lines = lines[:-1]
    assert len(lines) == 16774
    assert len(set(lines)) == len(lines)
    for line in lines:
        assert len(line) == 20 and all("\u4e00" <= char <= "\u9fff" for char in line), line
    sequences = [tokenize(line, "char") for line in lines]
    vocab = Vocabulary.build(sequences)
    assert len(vocab) == 6072 + 2
    array, report = encode_corpus(sequences, vocab, max_len=20)
    assert array.shape == (16774, 20) and not (array == EOS_ID).any()
    assert report.kept == 16774


def test_split_keeps_repeated_sequences_on_one_side() -> None:
    # A corpus with repeated lines (captions, news headlines) put copies of one line in both
    # train and test: BLEU against test then rewarded memorising training lines. A
    # sequence's copies now share a side; the split draws over distinct sequences.
    from seqgan_core.corpus import split_distinct

    rng = np.random.default_rng(0)
    distinct = [[f"w{i}", f"v{i % 7}"] for i in range(200)]
    sequences = [distinct[i] for i in rng.integers(0, 200, size=600)]
    train, test = split_distinct(sequences, 0.2, seed=3)
    assert sorted([*train.tolist(), *test.tolist()]) == list(range(600))
    assert not {tuple(sequences[i]) for i in train} & {tuple(sequences[i]) for i in test}
    assert len({tuple(sequences[i]) for i in test}) == round(len({tuple(s) for s in sequences}) * 0.2)


def test_split_of_distinct_sequences_is_the_row_split() -> None:
    # Without repeats it is exactly split_train_test over the lines: the bundled corpus's
    # split (and every figure computed on it) is unchanged.
    from seqgan_core.corpus import split_distinct

    sequences = [[str(i)] for i in range(101)]
    train, test = split_distinct(sequences, 0.1, seed=0)
    expected_train, expected_test = split_train_test(np.arange(101), 0.1, seed=0)
    assert np.array_equal(train, expected_train) and np.array_equal(test, expected_test)


def test_preprocess_keeps_copies_of_a_row_together() -> None:
    # The stage splits on what it encodes: with overlong "truncate", lines equal in their
    # first max_len tokens are the same row, so they too must not straddle train and test.
    import yaml

    from pipelines.config import parse_params
    from pipelines.stages.preprocess import repeated_lines, split_corpus

    raw = yaml.safe_load((ROOT / "profiles/tiny.yaml").read_text())
    raw["corpus"].update(max_len=3, overlong="truncate", test_fraction=0.3)
    c = parse_params(raw).corpus
    tokenized = [["a", str(i), "x", str(j)] for i in range(40) for j in range(3)] + [[], []]
    train, test = split_corpus(tokenized, c)
    rows = lambda idx: {tuple(tokenized[i][:3]) for i in idx}  # noqa: E731
    assert not rows(train) & rows(test)
    assert repeated_lines(tokenized, c) == 80  # 40 rows of 3 lines; blank lines are no repeats


def test_a_literal_end_token_ends_the_sequence() -> None:
    # Whitespace corpora may carry "<eos>" markers. At the end of a line it is the end the row
    # has anyway; mid-line it wrote tokens after the row's end (decoded, scored and gated as
    # the part before it, trained on whole), and at the start it made a row of pure padding
    # that the corpus gate blamed on "empty lines". The words after it are now cut and counted.
    lines = ["a b <eos>", "a b <eos> c d", "<eos> a b", "<eos>"]
    sequences = [tokenize(line, "whitespace") for line in lines]
    vocab = Vocabulary.build(sequences)
    array, report = encode_corpus(sequences, vocab, max_len=4)
    a, b = vocab.encode(["a", "b"])
    assert array.tolist() == [[a, b, EOS_ID, EOS_ID], [a, b, EOS_ID, EOS_ID]]
    assert report == EncodeReport(kept=2, dropped_empty=2, dropped_overlong=0, truncated=0, cut_at_eos=2)
    # Over-long is judged on what is kept: 5 words then <eos> fit max_len 5, not 6.
    array, report = encode_corpus([tokenize("a b a b a <eos> c", "whitespace")], vocab, max_len=5)
    assert report.kept == 1 and report.dropped_overlong == 0 and report.cut_at_eos == 1
