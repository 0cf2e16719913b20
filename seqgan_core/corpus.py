"""Turning a text corpus into the fixed-length id matrices the models train on.

The pipeline's `preprocess` stage reads lines, tokenises them (`tokenize`), builds a
`Vocabulary`, encodes every line into a row of a (n, max_len) int64 matrix
(`encode_corpus`) and splits the rows into train and test sets (`split_train_test`;
`split_distinct` keeps every copy of a repeated sequence on one side).

Every step is deterministic given its inputs and seed, so re-running preprocessing on the
same corpus produces byte-identical arrays and vocabulary files, and a checkpoint trained
on one run decodes correctly against the vocabulary of another.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Literal

import numpy as np
from numpy.typing import NDArray

TokenMode = Literal["char", "whitespace"]
Overlong = Literal["drop", "truncate"]

EOS = "<eos>"
UNK = "<unk>"
# Fixed ids, not derived from counts: the generator starts every sequence from EOS_ID and
# the models pad with it, so code that never sees the vocabulary (samplers, the oracle, the
# discriminator's padding) can rely on these numbers.
EOS_ID = 0
UNK_ID = 1
SPECIALS = (EOS, UNK)


def strip_eos(rows: Iterable[Sequence[int]], eos_id: int | None = EOS_ID) -> list[list[int]]:
    """Each id row up to (not including) its first end token: the sentence BLEU compares.

    Rows are padded with `eos_id` after the sentence ends; a row without one is whole, and
    ``eos_id=None`` (oracle data, which has no end token) keeps every row whole. Accepts
    a (n, T) tensor or array, or lists of ids.
    """
    stripped = []
    for row in rows.tolist() if hasattr(rows, "tolist") else rows:
        row = list(row)
        stripped.append(row[: row.index(eos_id)] if eos_id is not None and eos_id in row else row)
    return stripped


def tokenize(line: str, mode: TokenMode) -> list[str]:
    """Split one line of text into tokens.

    "char" makes every non-whitespace character a token (Chinese poetry, where the paper
    uses one character per token and spaces carry no meaning); "whitespace" splits on runs
    of whitespace (pre-tokenised word corpora). Lowercasing is left to the caller so it
    stays an explicit, recorded choice rather than a hidden default.
    """
    if mode == "char":
        return [char for char in line if not char.isspace()]
    if mode == "whitespace":
        return line.split()
    raise ValueError(f"unknown tokenisation mode {mode!r}; expected 'char' or 'whitespace'")


class Vocabulary:
    """A bijection between token strings and ids, with `<eos>` = 0 and `<unk>` = 1.

    Real tokens follow the two specials in a canonical order (see `build`), so the same
    corpus always yields the same ids: a re-run, another machine or another Python hash
    seed maps every token identically, and saved models stay decodable.
    """

    def __init__(self, tokens: Sequence[str]) -> None:
        """Wrap an id-ordered token list (specials first), as stored by `to_json`.

        Use `build` to make a vocabulary from a corpus; this constructor only validates,
        so that a hand-edited or corrupted file cannot silently shift the special ids.
        """
        self._tokens = tuple(tokens)
        if self._tokens[: len(SPECIALS)] != SPECIALS:
            raise ValueError(f"a vocabulary must start with {SPECIALS}, got {self._tokens[: len(SPECIALS)]}")
        self._ids = {token: i for i, token in enumerate(self._tokens)}
        if len(self._ids) != len(self._tokens):
            duplicates = sorted(t for t, n in Counter(self._tokens).items() if n > 1)
            raise ValueError(f"duplicate tokens in vocabulary: {duplicates[:10]}")

    @classmethod
    def build(
        cls,
        sequences: Iterable[Sequence[str]],
        max_size: int | None = None,
        min_count: int = 1,
    ) -> Vocabulary:
        """Count tokens and keep the most frequent, ids sorted by (count desc, token asc).

        The tie-break on the token string makes the order a pure function of the counts,
        never of input order or set/dict iteration, which is what keeps ids stable.
        `max_size` counts the two specials (so the model's vocabulary size is exactly
        `max_size`); tokens that fall outside the cap or below `min_count` encode as
        `<unk>`. Literal "<eos>"/"<unk>" strings in the text are not counted: they already
        have their special ids.
        """
        if max_size is not None and max_size < len(SPECIALS):
            raise ValueError(f"max_size must be at least {len(SPECIALS)} (the specials), got {max_size}")
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        counts = Counter(token for sequence in sequences for token in sequence)
        ranked = sorted(
            (token for token, count in counts.items() if count >= min_count and token not in SPECIALS),
            key=lambda token: (-counts[token], token),
        )
        if max_size is not None:
            ranked = ranked[: max_size - len(SPECIALS)]
        return cls([*SPECIALS, *ranked])

    @property
    def tokens(self) -> tuple[str, ...]:
        """All tokens in id order (index = id), specials included."""
        return self._tokens

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._ids

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._tokens == other._tokens

    def __repr__(self) -> str:
        return f"Vocabulary(size={len(self)})"

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Map tokens to ids; tokens not in the vocabulary become UNK_ID."""
        return [self._ids.get(token, UNK_ID) for token in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Map ids back to tokens, stopping at the first EOS_ID.

        Everything after the end token is padding (or, for generated samples, noise the
        model emitted after finishing), so it is not part of the sequence.
        """
        tokens: list[str] = []
        for token_id in ids:
            token_id = int(token_id)
            if token_id == EOS_ID:
                break
            if not 0 <= token_id < len(self._tokens):
                raise ValueError(f"id {token_id} is outside the vocabulary (size {len(self)})")
            tokens.append(self._tokens[token_id])
        return tokens

    def coverage(self, sequences: Iterable[Sequence[str]]) -> float:
        """Fraction of tokens that encode to something other than `<unk>`.

        Reported by preprocessing so a too-small `max_size` shows up as a number rather
        than as unexplained `<unk>`-heavy samples. An empty corpus has coverage 1.0.
        """
        total = known = 0
        for sequence in sequences:
            for token in sequence:
                total += 1
                known += self._ids.get(token, UNK_ID) != UNK_ID
        return known / total if total else 1.0

    def to_json(self) -> str:
        """Serialise as JSON: {"tokens": [...]} in id order, one token per line.

        Non-ASCII tokens are written as themselves so the file is readable and diffs well.
        """
        return json.dumps({"tokens": list(self._tokens)}, ensure_ascii=False, indent=0) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Vocabulary:
        """Inverse of `to_json`: `Vocabulary.from_json(v.to_json()) == v`."""
        return cls(json.loads(text)["tokens"])

    def save(self, path: str | PathLike[str]) -> None:
        """Write `to_json()` to `path` as UTF-8."""
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(self.to_json())

    @classmethod
    def load(cls, path: str | PathLike[str]) -> Vocabulary:
        """Read a file written by `save`."""
        with open(path, encoding="utf-8") as f:
            return cls.from_json(f.read())


@dataclass(frozen=True)
class EncodeReport:
    """What `encode_corpus` did with each input sequence.

    `kept` includes the `truncated` ones; kept + dropped_empty + dropped_overlong is the
    number of input sequences. `cut_at_eos` counts sequences that lost the tokens after a
    literal `<eos>` in the text (`until_eos`), whatever became of them. Preprocessing records
    this so silent data loss is visible.
    """

    kept: int
    dropped_empty: int
    dropped_overlong: int
    truncated: int
    cut_at_eos: int = 0


def until_eos(sequence: Sequence[str]) -> Sequence[str]:
    """The tokens before the first literal `<eos>` (the whole sequence when there is none).

    The text's "<eos>" encodes to EOS_ID, the end of the row: tokens after it would sit in
    the padding, trained on but cut from every decoded, scored or gated view of the row.
    """
    return sequence[: list(sequence).index(EOS)] if EOS in sequence else sequence


def encode_corpus(
    sequences: Iterable[Sequence[str]],
    vocab: Vocabulary,
    max_len: int,
    overlong: Overlong = "drop",
) -> tuple[NDArray[np.int64], EncodeReport]:
    """Encode token sequences into an (n, max_len) int64 matrix, one row per sequence.

    A sequence shorter than max_len is followed by `<eos>` and then `<eos>` padding, so the
    model learns where sequences end. A sequence of exactly max_len tokens gets no `<eos>`:
    it fills the row, as in the paper's 20-character quatrains, which have no end token.
    Longer sequences are dropped (default: no sentence is cut mid-way) or, with
    overlong="truncate", cut to their first max_len tokens. Empty sequences are dropped,
    since a row of pure padding teaches the model nothing but to stop immediately. A literal
    `<eos>` in the text ends its sequence (`until_eos`), before the length is judged.
    """
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    if overlong not in ("drop", "truncate"):
        raise ValueError(f"overlong must be 'drop' or 'truncate', got {overlong!r}")
    rows: list[list[int]] = []
    dropped_empty = dropped_overlong = truncated = cut_at_eos = 0
    for sequence in sequences:
        ended = until_eos(sequence)
        cut_at_eos += any(token != EOS for token in sequence[len(ended):])  # words lost, not a bare end mark
        sequence = ended
        if not sequence:
            dropped_empty += 1
            continue
        if len(sequence) > max_len:
            if overlong == "drop":
                dropped_overlong += 1
                continue
            truncated += 1
            sequence = sequence[:max_len]
        ids = vocab.encode(sequence)
        rows.append(ids + [EOS_ID] * (max_len - len(ids)))
    array = np.array(rows, dtype=np.int64).reshape(len(rows), max_len)
    return array, EncodeReport(len(rows), dropped_empty, dropped_overlong, truncated, cut_at_eos)


def split_train_test(
    array: NDArray[np.int64],
    test_fraction: float,
    seed: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Shuffle rows with a seeded numpy Generator, then split off round(n * test_fraction).

    Corpora are usually ordered (the quatrains by poet), so an unshuffled split would test
    on a different distribution; seeding makes the split reproducible and recordable.
    Returns (train, test) as new arrays; the input is not modified.
    """
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
    order = np.random.default_rng(seed).permutation(len(array))
    n_test = round(len(array) * test_fraction)
    return array[order[n_test:]], array[order[:n_test]]


def split_distinct(
    sequences: Sequence[Sequence[str]],
    test_fraction: float,
    seed: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Indices of the train and test sequences, every copy of a sequence on the same side.

    `split_train_test` over the distinct sequences (in order of first appearance), each then
    standing for all its copies: a corpus with repeated lines would otherwise put the same
    line in train and test, and BLEU against test would reward memorising training lines.
    `test_fraction` is thus a share of the distinct sequences. Without repeats this is
    exactly `split_train_test(np.arange(len(sequences)), ...)`, the same indices in the
    same order.
    """
    group_of: dict[tuple[str, ...], int] = {}
    members: list[list[int]] = []
    for index, sequence in enumerate(sequences):
        group = group_of.setdefault(tuple(sequence), len(group_of))
        if group == len(members):
            members.append([])
        members[group].append(index)
    train_groups, test_groups = split_train_test(np.arange(len(members)), test_fraction, seed)

    def expand(groups: NDArray[np.int64]) -> NDArray[np.int64]:
        return np.array([i for group in groups for i in members[group]], dtype=np.int64)

    return expand(train_groups), expand(test_groups)
