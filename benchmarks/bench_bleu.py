"""Benchmark seqgan_core.bleu against NLTK on 10,000 x 10,000 length-20 sentences.

Run: ``PYTHONPATH=. python benchmarks/bench_bleu.py``

Sentences are drawn (seeded) from a Zipf-like unigram distribution over a 5,000-token
vocabulary, so low orders overlap a lot and high orders rarely, as with real text.
NLTK is far too slow to run on the full set (it re-counts every reference for every
hypothesis), so it is timed on a small subset of hypotheses against the same full
reference set, extrapolated linearly (its cost is per hypothesis), and checked for
agreement with this implementation on that subset. Both are timed in this process.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from seqgan_core.bleu import BLEU, SelfBLEU

NUM_SENTENCES = 10_000
LENGTH = 20
VOCAB = 5_000
ZIPF_EXPONENT = 1.0
ORDERS = (2, 3, 4, 5)
NLTK_BLEU_SUBSET = 20
NLTK_SELF_BLEU_SUBSET = 5
SEED = 0


def zipf_sentences(rng: np.random.Generator, count: int) -> list[list[int]]:
    weights = 1.0 / np.arange(1, VOCAB + 1) ** ZIPF_EXPONENT
    tokens = rng.choice(VOCAB, size=(count, LENGTH), p=weights / weights.sum())
    return tokens.tolist()


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def nltk_scores(references, hypotheses, orders):
    """NLTK sentence_bleu per hypothesis; several orders go through NLTK's own
    multi-weight call, which counts n-grams once for all of them (its fastest use)."""
    smoothing = SmoothingFunction().method1
    weights = [(1 / n,) * n for n in orders]
    scores = [
        sentence_bleu(references, h, weights=weights, smoothing_function=smoothing)
        for h in hypotheses
    ]
    # NLTK returns a scalar for a single weight tuple and a list for several.
    return np.array(scores, dtype=float).reshape(len(hypotheses), len(orders))


def nltk_self_scores(samples, count, orders):
    """NLTK Self-BLEU of the first `count` samples, each against all the others."""
    return np.concatenate(
        [nltk_scores(samples[:j] + samples[j + 1 :], [samples[j]], orders) for j in range(count)]
    )


def main() -> None:
    rng = np.random.default_rng(SEED)
    references = zipf_sentences(rng, NUM_SENTENCES)
    hypotheses = zipf_sentences(rng, NUM_SENTENCES)
    scale_bleu = NUM_SENTENCES / NLTK_BLEU_SUBSET
    scale_self = NUM_SENTENCES / NLTK_SELF_BLEU_SUBSET

    print(
        f"{NUM_SENTENCES:,} hypotheses x {NUM_SENTENCES:,} references, length {LENGTH}, "
        f"vocab {VOCAB:,} (Zipf s={ZIPF_EXPONENT}), seed {SEED}"
    )
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs visible, "
        "single process; times include building the n-gram tables"
    )
    print(
        f"NLTK timed on {NLTK_BLEU_SUBSET} hypotheses (BLEU) / {NLTK_SELF_BLEU_SUBSET} "
        f"samples (Self-BLEU) and extrapolated x{scale_bleu:.0f} / x{scale_self:.0f}\n"
    )

    subset = hypotheses[:NLTK_BLEU_SUBSET]
    rows = []
    for n in ORDERS:
        scores, ours = timed(lambda: BLEU(references, max_n=n).sentence_scores(hypotheses, n))
        expected, nltk_time = timed(lambda: nltk_scores(references, subset, [n]))
        diff = np.max(np.abs(scores[:NLTK_BLEU_SUBSET] - expected[:, 0]))
        rows.append((f"BLEU-{n}", scores.mean(), ours, nltk_time * scale_bleu, diff))

    by_order, ours = timed(
        lambda: BLEU(references, max_n=max(ORDERS)).sentence_scores_by_order(hypotheses, ORDERS)
    )
    expected, nltk_time = timed(lambda: nltk_scores(references, subset, ORDERS))
    ours_subset = np.stack([by_order[n][:NLTK_BLEU_SUBSET] for n in ORDERS], axis=1)
    rows.append(
        ("BLEU-2..5, one pass", float("nan"), ours, nltk_time * scale_bleu,
         np.max(np.abs(ours_subset - expected)))
    )

    self_rows = []
    for n in ORDERS:
        scores, ours = timed(lambda: SelfBLEU(hypotheses, max_n=n).sentence_scores(n))
        expected, nltk_time = timed(
            lambda: nltk_self_scores(hypotheses, NLTK_SELF_BLEU_SUBSET, [n])
        )
        diff = np.max(np.abs(scores[:NLTK_SELF_BLEU_SUBSET] - expected[:, 0]))
        self_rows.append(
            (f"Self-BLEU-{n}", scores.mean(), ours, nltk_time * scale_self, diff)
        )
    by_order, ours = timed(
        lambda: SelfBLEU(hypotheses, max_n=max(ORDERS)).sentence_scores_by_order(ORDERS)
    )
    expected, nltk_time = timed(
        lambda: nltk_self_scores(hypotheses, NLTK_SELF_BLEU_SUBSET, ORDERS)
    )
    ours_subset = np.stack([by_order[n][:NLTK_SELF_BLEU_SUBSET] for n in ORDERS], axis=1)
    self_rows.append(
        ("Self-BLEU-2..5, one pass", float("nan"), ours, nltk_time * scale_self,
         np.max(np.abs(ours_subset - expected)))
    )

    header = (
        f"{'metric':<26}{'value':>9}{'ours (s)':>11}{'NLTK est. (s)':>15}"
        f"{'speed-up':>11}{'max |diff| on subset':>23}"
    )
    print(header)
    print("-" * len(header))
    for name, value, ours, nltk_est, diff in rows + self_rows:
        value_text = "" if np.isnan(value) else f"{value:.6f}"
        print(
            f"{name:<26}{value_text:>9}{ours:>11.2f}{nltk_est:>15.0f}"
            f"{nltk_est / ours:>10.0f}x{diff:>23.1e}"
        )
    print(
        "\n'one pass' rows: all four orders from one counting pass; NLTK likewise gets "
        "all four weight\ntuples in one sentence_bleu call (cheaper than the per-order "
        "calls Texygen makes)."
    )
    print(
        f"Self-BLEU sample size: {NUM_SENTENCES:,} (every hypothesis against the other "
        f"{NUM_SENTENCES - 1:,}); no subsampling."
    )


if __name__ == "__main__":
    # No options, but parse anyway: `--help` used to start the minutes-long run.
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    main()
