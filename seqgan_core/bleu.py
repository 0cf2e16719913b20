"""BLEU-n and Self-BLEU in the Texygen / SeqGAN evaluation convention, exact and fast.

Convention (what "BLEU-n" means in this project)
-------------------------------------------------
BLEU-n of a set of hypotheses against a reference set is the *mean of sentence-level
scores*, each hypothesis scored against *all* reference sentences at once::

    mean_h nltk.translate.bleu_score.sentence_bleu(
        references=all_references, hypothesis=h,
        weights=(1/n,) * n,                          # uniform, cumulative 1..n
        smoothing_function=SmoothingFunction().method1)  # epsilon = 0.1

This is not corpus BLEU (which pools counts before dividing). Per sentence, NLTK
computes, for k = 1..n, the modified precision p_k = clipped matches / max(1, #k-grams
in h), where a hypothesis k-gram's count is clipped at its largest count in any *single*
reference; method1 replaces p_k = 0 by 0.1 / max(1, #k-grams); the score is
BP * exp(fsum(log(p_k) / n)) with BP = 1 if |h| > r else exp(1 - r / |h|), r being the
reference length closest to |h| (ties go to the shorter one). One quirk is kept: if no
unigram matches at all (an empty hypothesis included), the score is exactly 0 regardless
of smoothing. Every floating-point operation here mirrors NLTK 3.x, so the values agree
with ``sentence_bleu`` to the last bit (tests check 1e-9 on every hypothesis).

Why not just call NLTK: ``sentence_bleu`` rebuilds n-gram counters for every reference
for every hypothesis, i.e. O(|hypotheses| * |references| * n) work -- 45 minutes (BLEU-2)
to 2 hours (BLEU-5) for 10k x 10k on one core (benchmarks/bench_bleu.py). All a hypothesis needs from the reference set, though, is each n-gram's
maximum count in any one reference and the set of reference lengths, so `BLEU` computes
those once and each hypothesis then costs O(its length * n).

Self-BLEU scores every sample against all *other* samples of the same set (never
against itself: that makes every score 1.0). `SelfBLEU` avoids one table per held-out
sentence by storing, per n-gram, its two largest per-sentence counts and which sentence
holds the largest, so "max count over the others" is an O(1) lookup. Self-BLEU depends
strongly on the size of the set, so the sample size is an explicit, reported parameter.

Sentences are sequences of hashable tokens (str, int, ...) that are already trimmed
(no padding / end-of-sequence tokens); numpy rows and torch tensors are accepted and
converted with ``tolist()``.

Smoothing (``BLEU(..., smoothing=...)``): "method1" is the convention above. PG-BLEU's
reward (`BLEUReward`) follows the SeqGAN authors' baseline, which called ``sentence_bleu``
without a smoothing function; what that computes depends on the NLTK release:

* "none_nltk32": NLTK 3.2.1 - 3.2.5 (April 2016 - 2018, current when the authors' code
  was written in 2016) leave orders without a match out of the sum: BLEU-3 of a sentence
  with no matching trigram is BP * (p_1 p_2)^(1/3). The default of `BLEUReward`.
* "none": NLTK >= 3.3 gives such an order the precision 2.2e-308 (sys.float_info.min),
  so its score is ~1e-103: zero for any sentence without a match of every order.
"""
from __future__ import annotations

import math
import sys
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Literal

import numpy as np
import torch

from .corpus import strip_eos

Sentence = Sequence[Hashable]
NGram = tuple[Hashable, ...]
Smoothing = Literal["method1", "none", "none_nltk32"]
SMOOTHINGS = ("method1", "none", "none_nltk32")

# NLTK's SmoothingFunction().method1 default: epsilon counts added to zero numerators.
_EPSILON = 0.1


def _as_tokens(sentence: Sentence) -> tuple[Hashable, ...]:
    """Tuple of plain tokens; array rows go through tolist() so tokens hash by value
    (0-d torch tensors hash by identity, numpy scalars are slow to hash)."""
    if hasattr(sentence, "tolist"):
        sentence = sentence.tolist()
    # A str is a sequence too, of characters: scored as one, "the cat" vs ["the", "cat"]
    # silently gave character-level BLEU (or 0).
    if isinstance(sentence, str):
        raise TypeError(f"a sentence must be a sequence of tokens, got the string {sentence[:40]!r}; "
                        "split it into tokens first (e.g. line.split())")
    if not isinstance(sentence, Iterable):  # e.g. one sentence passed where a list of them belongs
        raise TypeError(f"expected a collection of sentences (token sequences), found {sentence!r} where a sentence "
                        "belongs; a single sentence goes in a list: [sentence]")
    return tuple(sentence)


def _ngram_counts(tokens: tuple[Hashable, ...], k: int) -> Counter[NGram]:
    """Counts of the k-grams of `tokens` (empty when len(tokens) < k, as in NLTK)."""
    return Counter(zip(*(tokens[i:] for i in range(k))))


def _closest_length(sorted_lengths: Sequence[int], hyp_len: int) -> int:
    """NLTK's closest_ref_length: the length nearest to hyp_len, ties to the shorter.

    Only the neighbours around the insertion point can be closest: the largest length
    below hyp_len and the smallest length >= hyp_len.
    """
    i = bisect_left(sorted_lengths, hyp_len)
    candidates = sorted_lengths[max(i - 1, 0) : i + 1]
    return min(candidates, key=lambda r: (abs(r - hyp_len), r))


def _sentence_bleu(matches: Sequence[int], hyp_len: int, ref_len: int, n: int, smoothing: Smoothing) -> float:
    """BLEU-n from clipped match counts, operation for operation as NLTK's
    ``corpus_bleu`` on one sentence with weights (1/n,)*n and ``smoothing`` (see the
    module docstring for the NLTK release each one mirrors).

    matches[k-1] is the clipped k-gram match count. The order of float operations
    (int/int division, log, fsum, exp, product with BP) is NLTK's, so results are
    bit-identical, not merely close.
    """
    if matches[0] == 0:  # NLTK returns 0 before smoothing when no unigram matches
        return 0.0
    weight = 1 / n
    log_terms = []
    for k in range(1, n + 1):
        total = max(1, hyp_len - k + 1)
        matched = matches[k - 1]
        if matched:
            precision = matched / total
        elif smoothing == "method1":
            precision = _EPSILON / total
        elif smoothing == "none":
            precision = sys.float_info.min
        else:  # "none_nltk32" leaves the order out; no higher order can match either
            break
        log_terms.append(weight * math.log(precision))
    # hyp_len > 0 here because at least one unigram matched.
    penalty = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return penalty * math.exp(math.fsum(log_terms))


def _check_smoothing(smoothing: str) -> Smoothing:
    if smoothing not in SMOOTHINGS:
        raise ValueError(f"smoothing must be one of {', '.join(SMOOTHINGS)}, got {smoothing!r}")
    return smoothing


def _check_max_n(max_n: int) -> int:
    """``max_n`` as an int (numpy integers too, as `_check_orders` accepts them)."""
    if not isinstance(max_n, (int, np.integer)) or isinstance(max_n, bool) or max_n < 1:
        raise ValueError(f"max_n must be a positive int, got {max_n!r}")
    return int(max_n)


def _check_orders(orders: Iterable[int], max_n: int) -> tuple[int, ...]:
    orders = tuple(orders)
    if not orders:
        raise ValueError("at least one n-gram order is required")
    for n in orders:
        if not isinstance(n, (int, np.integer)) or not 1 <= n <= max_n:
            raise ValueError(f"n-gram order must be an int in 1..{max_n}, got {n!r}")
    return orders


def _scores_by_order(
    hypotheses: Sequence[tuple[Hashable, ...]],
    orders: tuple[int, ...],
    match_counts: Callable[[int, tuple[Hashable, ...], int], list[int]],
    ref_length: Callable[[int, int], int],
    smoothing: Smoothing,
) -> dict[int, np.ndarray]:
    """Score every hypothesis for every order from one counting pass.

    The clipped match counts of orders 1..max(orders) are shared: BLEU-n only differs
    in how many of them enter the geometric mean.
    """
    top = max(orders)
    scores = {n: np.empty(len(hypotheses)) for n in orders}
    for i, hyp in enumerate(hypotheses):
        matches = match_counts(i, hyp, top)
        ref_len = ref_length(i, len(hyp))
        for n in orders:
            scores[n][i] = _sentence_bleu(matches, len(hyp), ref_len, n, smoothing)
    return scores


class BLEU:
    """Sentence-level BLEU-n (Texygen convention, see module docstring) of hypotheses
    against one fixed reference set, for orders 1..max_n.

    The reference statistics are built once (O(total reference length * max_n)), so
    the same object can score many hypothesis sets, e.g. after every training epoch.
    ``smoothing`` is the convention's "method1" unless told otherwise (module docstring).
    """

    def __init__(self, references: Iterable[Sentence], max_n: int = 5, smoothing: Smoothing = "method1") -> None:
        max_n = _check_max_n(max_n)
        self.smoothing = _check_smoothing(smoothing)
        refs = [_as_tokens(r) for r in references]
        if not refs:
            raise ValueError("BLEU needs at least one reference sentence")
        self.max_n = max_n
        self.num_references = len(refs)
        self._ref_lengths = sorted({len(r) for r in refs})
        # n-gram (a tuple; orders never collide since lengths differ) -> its largest
        # count in any single reference, which is what NLTK clips against.
        self._max_counts: dict[NGram, int] = {}
        get = self._max_counts.get
        for ref in refs:
            for k in range(1, max_n + 1):
                for gram, count in _ngram_counts(ref, k).items():
                    if count > get(gram, 0):
                        self._max_counts[gram] = count

    def _match_counts(self, _: int, hyp: tuple[Hashable, ...], n: int) -> list[int]:
        """Clipped match counts of orders 1..n for one hypothesis."""
        get = self._max_counts.get
        matches = [0] * n
        for k in range(1, n + 1):
            matched = sum(min(c, get(g, 0)) for g, c in _ngram_counts(hyp, k).items())
            if matched == 0:
                # A matching (k+1)-gram occurs in some reference, and so does its
                # leading k-gram; no k-gram matched, so no higher order can match.
                break
            matches[k - 1] = matched
        return matches

    def _ref_length(self, _: int, hyp_len: int) -> int:
        return _closest_length(self._ref_lengths, hyp_len)

    def sentence_scores_by_order(
        self, hypotheses: Iterable[Sentence], orders: Iterable[int] = (2, 3, 4, 5)
    ) -> dict[int, np.ndarray]:
        """{n: per-hypothesis BLEU-n} for each n in `orders`, in one pass."""
        orders = _check_orders(orders, self.max_n)
        hyps = [_as_tokens(h) for h in hypotheses]
        return _scores_by_order(hyps, orders, self._match_counts, self._ref_length, self.smoothing)

    def sentence_scores(self, hypotheses: Iterable[Sentence], n: int) -> np.ndarray:
        """Per-hypothesis BLEU-n, equal to NLTK's sentence_bleu (see module docstring)."""
        return self.sentence_scores_by_order(hypotheses, (n,))[n]

    def corpus_mean(self, hypotheses: Iterable[Sentence], n: int) -> float:
        """BLEU-n of the hypothesis set: the mean of the sentence scores."""
        scores = self.sentence_scores(hypotheses, n)
        if scores.size == 0:
            raise ValueError("BLEU of an empty hypothesis set is undefined")
        return float(scores.mean())


def bleu(hypotheses: Iterable[Sentence], references: Iterable[Sentence], n: int) -> float:
    """BLEU-n of `hypotheses` against `references`: mean over hypotheses of NLTK's
    sentence_bleu(all references, h, weights=(1/n,)*n, smoothing=method1)."""
    return BLEU(references, max_n=n).corpus_mean(hypotheses, n)


class BLEUReward:
    """PG-BLEU's reward: each sequence's BLEU-n against a fixed reference set.

    The SeqGAN authors' PG-BLEU baseline runs SeqGAN's loop with this in place of the
    discriminator: BLEU-3 (uniform weights) against a random 40% of the real data, one
    rollout per prefix, NLTK's ``sentence_bleu`` without smoothing. The paper does not
    say which smoothing; the default, "none_nltk32", is what that call computed in the
    NLTK of the authors' code (orders without a match left out, module docstring);
    "none" is today's NLTK (such sentences score ~0), "method1" the evaluation
    convention. Called with a (M, T) LongTensor of token ids, it returns the (M,) float
    rewards on the same device. With ``eos_id`` set, rows are cut at their first end
    token before scoring (corpus data); the oracle's rows are scored whole.
    """

    def __init__(self, references: torch.Tensor, n: int = 3, eos_id: int | None = None,
                 smoothing: Smoothing = "none_nltk32") -> None:
        self.n, self.eos_id = n, eos_id
        self.bleu = BLEU(strip_eos(references, eos_id), max_n=n, smoothing=smoothing)

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        scores = self.bleu.sentence_scores(strip_eos(tokens.cpu(), self.eos_id), self.n)
        return torch.as_tensor(scores, dtype=torch.float32, device=tokens.device)


class SelfBLEU:
    """Self-BLEU: each sample's BLEU-n against all *other* samples of a fixed set.

    Same per-sentence score as `BLEU` (uniform weights, method1 smoothing), but the
    reference set of sample j is the set minus sample j. If `sample_size` is given, a
    subset of that many samples is drawn without replacement (numpy ``default_rng(seed)``)
    and both hypotheses and references come from that subset; the value depends strongly
    on the set size, so report `sample_size` next to the score.
    """

    def __init__(
        self,
        samples: Sequence[Sentence],
        max_n: int = 5,
        sample_size: int | None = None,
        seed: int = 0,
    ) -> None:
        max_n = _check_max_n(max_n)
        if sample_size is None:
            sample_size = len(samples)
            self.indices = np.arange(sample_size)
        else:
            if not 2 <= sample_size <= len(samples):
                raise ValueError(
                    f"sample_size must be in 2..{len(samples)} (the number of samples), "
                    f"got {sample_size}"
                )
            rng = np.random.default_rng(seed)
            self.indices = rng.choice(len(samples), size=sample_size, replace=False)
        if sample_size < 2:
            raise ValueError("Self-BLEU needs at least two samples")
        self.max_n = max_n
        self.sample_size = sample_size
        self._samples = [_as_tokens(samples[i]) for i in self.indices]

        lengths = Counter(len(s) for s in self._samples)
        self._length_counts = lengths
        self._lengths = sorted(lengths)
        # Per n-gram: the largest per-sentence count, the sentence holding it, and the
        # largest count in any *other* sentence. max over "all but j" is then
        # top2 if j owns the maximum else top1.
        self._top1: dict[NGram, int] = {}
        self._owner: dict[NGram, int] = {}
        self._top2: dict[NGram, int] = {}
        top1, owner, top2 = self._top1, self._owner, self._top2
        for j, sentence in enumerate(self._samples):
            for k in range(1, max_n + 1):
                for gram, count in _ngram_counts(sentence, k).items():
                    best = top1.get(gram, 0)
                    if count > best:
                        if best:  # the old maximum belongs to another sentence
                            top2[gram] = best
                        top1[gram] = count
                        owner[gram] = j
                    elif count > top2.get(gram, 0):
                        top2[gram] = count

    def _match_counts(self, j: int, hyp: tuple[Hashable, ...], n: int) -> list[int]:
        """Clipped match counts of orders 1..n for sample j against the others."""
        top1, owner, top2 = self._top1, self._owner, self._top2
        matches = [0] * n
        for k in range(1, n + 1):
            matched = 0
            for gram, count in _ngram_counts(hyp, k).items():
                best_other = top2.get(gram, 0) if owner[gram] == j else top1[gram]
                matched += min(count, best_other)
            if matched == 0:  # no higher order can match either (see BLEU._match_counts)
                break
            matches[k - 1] = matched
        return matches

    def _ref_length(self, _: int, hyp_len: int) -> int:
        """Closest length among the other samples: the sample's own length counts
        only if another sample shares it; otherwise look at the neighbouring lengths."""
        if self._length_counts[hyp_len] > 1:
            return hyp_len
        i = bisect_left(self._lengths, hyp_len)
        others = self._lengths[max(i - 1, 0) : i] + self._lengths[i + 1 : i + 2]
        return min(others, key=lambda r: (abs(r - hyp_len), r))

    def sentence_scores_by_order(
        self, orders: Iterable[int] = (2, 3, 4, 5)
    ) -> dict[int, np.ndarray]:
        """{n: per-sample Self-BLEU-n}, samples in the order of `self.indices`."""
        orders = _check_orders(orders, self.max_n)
        return _scores_by_order(
            self._samples, orders, self._match_counts, self._ref_length, "method1"
        )

    def sentence_scores(self, n: int) -> np.ndarray:
        """Per-sample BLEU-n against the other samples."""
        return self.sentence_scores_by_order((n,))[n]

    def mean(self, n: int) -> float:
        """Self-BLEU-n of the set: the mean of the per-sample scores."""
        return float(self.sentence_scores(n).mean())


def self_bleu(
    samples: Sequence[Sentence], n: int, sample_size: int | None = None, seed: int = 0
) -> float:
    """Self-BLEU-n: mean over the (optionally subsampled) set of each sample's BLEU-n
    against all other samples in that set (uniform weights, method1 smoothing).

    `sample_size=None` uses every sample; otherwise a seeded subset of `sample_size`
    samples is drawn first. Report the size used: Self-BLEU grows with it.
    """
    return SelfBLEU(samples, max_n=n, sample_size=sample_size, seed=seed).mean(n)
