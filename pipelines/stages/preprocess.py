"""Stage `preprocess`: the real experiment's data.

Tokenise a text corpus (one sequence per line), split it with a seed, build the
vocabulary on the training split only (so test coverage is honest), encode to fixed
length with <eos> padding, and gate the result with the corpus suite.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from seqgan_core.corpus import EOS_ID, UNK_ID, Vocabulary, encode_corpus, split_distinct, tokenize, until_eos

from ..config import CorpusParams
from ..datasets import save_dataset
from ..files import StageError, write_json, write_text
from ..runtime import run_main, stage
from ..validation import validate_corpus, validate_token_sequences


def read_lines(path: Path) -> list[str]:
    if not path.exists():
        raise StageError(f"corpus.path = {str(path)!r} does not exist; point it at a UTF-8 text file "
                         "with one sequence per line (see data/corpora/README.md)")
    if path.is_dir():
        raise StageError(f"corpus.path = {str(path)!r} is a folder; point it at the text file inside it "
                         "(one sequence per line)")
    try:
        # utf-8-sig: a byte-order mark (Notepad, many exporters) is not text; kept, it became
        # a token of its own or part of the first line's first word.
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise StageError(f"{path} is not UTF-8 text (bad byte at offset {exc.start}); "
                         "convert it to UTF-8 or point corpus.path at another file") from None
    lines = split_lines(text)
    refuse_nul(path, lines)
    return lines


def split_lines(text: str) -> list[str]:
    """The file's lines, ended by \n, \r\n or \r only.

    Not str.splitlines(): it also breaks at U+2028, U+0085, form feeds and other Unicode
    separators, so one sequence of the file became several. Inside a line they are
    whitespace, which both tokenizers drop.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] == "":  # the final line end (or an empty file) starts no line
        lines.pop()
    return lines


def refuse_nul(path: Path, lines: list[str]) -> None:
    """Text has no NUL bytes; UTF-16 without a BOM (and some binaries) still decode as UTF-8,
    and their NULs would be the corpus's most frequent token."""
    for number, line in enumerate(lines, 1):
        if "\0" in line:
            raise StageError(f"{path} has a NUL byte on line {number}: it looks like UTF-16 or binary, not "
                             "UTF-8 text; convert it to UTF-8 or point corpus.path at another file")


def row_keys(tokenized: list[list[str]], c: CorpusParams) -> list[list[str]]:
    """What each line encodes to: lines with equal keys are the same row. A line ends at a
    literal <eos>, and a truncated one keeps its first max_len tokens, so lines that differ
    only past either cut are copies."""
    ended = [until_eos(tokens) for tokens in tokenized]
    return [tokens[: c.max_len] for tokens in ended] if c.overlong == "truncate" else ended


def split_corpus(tokenized: list[list[str]], c: CorpusParams) -> tuple[np.ndarray, np.ndarray]:
    """Train and test line indices, every copy of a row on one side: a repeated line in both
    would put test lines in train."""
    return split_distinct(row_keys(tokenized, c), c.test_fraction, c.split_seed)


def repeated_lines(tokenized: list[list[str]], c: CorpusParams) -> int:
    """Non-empty lines that repeat an earlier line's row (reported: the split keeps them together)."""
    keys = [tuple(key) for key in row_keys(tokenized, c) if key]
    return len(keys) - len(set(keys))


def refuse_nothing_kept(c: CorpusParams, lines_read: int, counts: dict[str, int]) -> None:
    """One line naming why no line survived, and the fix. The corpus gate would say "too few
    train lines" and blame the vocabulary's coverage (0 of 0 tokens): the wrong fix."""
    if counts["kept"]:
        return
    if counts["dropped_overlong"]:
        fix = "raise corpus.max_len or set corpus.overlong: truncate"
    else:
        fix = "point corpus.path at a text file with one sequence per line"
    raise StageError(f"corpus.path = {c.path!r} has no line to train on: {lines_read} line(s) read, "
                     f"{counts['dropped_empty']} blank, {counts['dropped_overlong']} longer than "
                     f"corpus.max_len={c.max_len}; {fix}")


def main() -> None:
    with stage("preprocess", "real") as ctx:
        c = ctx.params.corpus
        lines = read_lines(Path(c.path))
        tokenized = [tokenize(line.lower() if c.lowercase else line, c.tokenizer) for line in lines]
        train_idx, test_idx = split_corpus(tokenized, c)
        vocab = Vocabulary.build([tokenized[i] for i in train_idx], max_size=c.vocab_size, min_count=c.min_count)
        (train, train_report), (test, test_report) = (
            encode_corpus([tokenized[i] for i in split], vocab, c.max_len, overlong=c.overlong)
            for split in (train_idx, test_idx)
        )
        counts = {f: getattr(train_report, f) + getattr(test_report, f)
                  for f in ("kept", "dropped_empty", "dropped_overlong", "truncated", "cut_at_eos")}
        refuse_nothing_kept(c, len(lines), counts)
        encoded = np.concatenate([train, test])
        lengths = np.where((encoded == EOS_ID).any(axis=1), (encoded == EOS_ID).argmax(axis=1), c.max_len)
        decode = ctx.kind.decoder(vocab, c.tokenizer)
        table = pd.DataFrame({
            "split": ["train"] * len(train) + ["test"] * len(test),
            "n_tokens": lengths,
            "n_unknown": (encoded == UNK_ID).sum(axis=1),
            "text": [decode(row) for row in encoded],
        })
        batch = ctx.params.pretrain_generator.batch_size
        summary = validate_corpus(table, max_len=c.max_len, min_coverage=c.min_coverage, min_train=batch, min_test=1)
        for name, tokens in (("corpus_train", train), ("corpus_test", test)):
            validate_token_sequences(tokens, suite=name, vocab_size=len(vocab), seq_len=c.max_len, min_rows=1)

        write_text(ctx.artifacts.vocab, vocab.to_json())
        save_dataset(ctx.artifacts, train, test, {
            "vocab_size": len(vocab), "seq_len": c.max_len, "start_token": EOS_ID,
            "tokenizer": c.tokenizer, "source": c.path,
        })
        coverage = 1.0 - table.n_unknown.sum() / table.n_tokens.sum()
        metrics = {"lines_read": len(lines), "repeated": repeated_lines(tokenized, c), **counts,
                   "vocab_size": len(vocab), "coverage": float(coverage), "train": len(train), "test": len(test)}
        write_json(ctx.artifacts.metrics("preprocess"), metrics)
        ctx.tracker.log_metrics(metrics, parent=True)
        ctx.tracker.set_tags({"seqgan.gx_corpus": str(summary)})


if __name__ == "__main__":
    run_main(main)
