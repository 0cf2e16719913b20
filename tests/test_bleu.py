"""Parity of seqgan_core.bleu with NLTK's sentence_bleu (Texygen convention) and
Self-BLEU semantics (a sample is never its own reference)."""
from __future__ import annotations

import math
import random
import warnings

import numpy as np
import pytest
import torch
from nltk.translate.bleu_score import SmoothingFunction, modified_precision, sentence_bleu

from seqgan_core.bleu import BLEU, BLEUReward, SelfBLEU, bleu, self_bleu

METHOD1 = SmoothingFunction().method1
ATOL = 1e-9


def nltk_bleu(references, hypothesis, n):
    return float(
        sentence_bleu(
            references, hypothesis, weights=(1 / n,) * n, smoothing_function=METHOD1
        )
    )


def nltk_self_bleu_scores(samples, n):
    return [
        nltk_bleu(samples[:j] + samples[j + 1 :], samples[j], n)
        for j in range(len(samples))
    ]


def random_sentences(rng, count, vocab, max_len=25, min_len=0):
    return [
        [rng.randrange(vocab) for _ in range(rng.randint(min_len, max_len))]
        for _ in range(count)
    ]


# --------------------------------------------------------------------------- BLEU


@pytest.mark.parametrize("seed", range(6))
def test_random_parity_with_nltk_every_hypothesis(seed):
    rng = random.Random(seed)
    vocab = 3 + seed  # small vocabularies so that higher-order n-grams overlap too
    references = random_sentences(rng, 25, vocab)
    hypotheses = random_sentences(rng, 30, vocab)
    scorer = BLEU(references, max_n=5)
    for n in range(1, 6):
        expected = [nltk_bleu(references, h, n) for h in hypotheses]
        np.testing.assert_allclose(
            scorer.sentence_scores(hypotheses, n), expected, rtol=0, atol=ATOL
        )


def test_random_parity_string_tokens():
    rng = random.Random(42)
    words = ["the", "cat", "sat", "on", "mat", "a"]
    references = [[rng.choice(words) for _ in range(rng.randint(1, 12))] for _ in range(15)]
    hypotheses = [[rng.choice(words) for _ in range(rng.randint(0, 12))] for _ in range(20)]
    for n in range(2, 6):
        expected = [nltk_bleu(references, h, n) for h in hypotheses]
        np.testing.assert_allclose(
            BLEU(references).sentence_scores(hypotheses, n), expected, rtol=0, atol=ATOL
        )


def test_scores_by_order_match_single_order_calls():
    rng = random.Random(7)
    references = random_sentences(rng, 20, 4)
    hypotheses = random_sentences(rng, 20, 4)
    scorer = BLEU(references)
    by_order = scorer.sentence_scores_by_order(hypotheses, (2, 3, 4, 5))
    assert sorted(by_order) == [2, 3, 4, 5]
    for n, scores in by_order.items():
        np.testing.assert_array_equal(scores, scorer.sentence_scores(hypotheses, n))


def test_bleu_function_is_mean_of_nltk_sentence_scores():
    rng = random.Random(3)
    references = random_sentences(rng, 20, 5, min_len=1)
    hypotheses = random_sentences(rng, 20, 5, min_len=1)
    for n in (2, 3, 4, 5):
        expected = sum(nltk_bleu(references, h, n) for h in hypotheses) / len(hypotheses)
        assert bleu(hypotheses, references, n) == pytest.approx(expected, abs=ATOL)
        assert BLEU(references).corpus_mean(hypotheses, n) == pytest.approx(
            expected, abs=ATOL
        )


EDGE_CASES = {
    # No token in common: NLTK returns exactly 0 even with smoothing.
    "no_overlap": ([[1, 2, 3, 4]], [5, 6, 7, 8]),
    # Unigrams match but no bigram does: method1 smooths the higher orders.
    "unigrams_only": ([[1, 2, 3, 4]], [4, 3, 2, 1]),
    # Shorter than every reference: brevity penalty against the closest (shortest).
    "shorter_than_all_refs": ([[1, 2, 3, 4, 5, 6, 7], [1, 2, 3, 4, 5, 6, 7, 8, 9]], [1, 2, 3]),
    # Repeated n-grams clip at the max count in ONE reference (3), not the sum (2 + 3).
    "clipping_single_ref_max": ([[1, 1, 2], [1, 9, 1, 1]], [1, 1, 1, 1, 1]),
    "clipping_bigrams": ([[1, 2, 1, 2], [1, 2, 3]], [1, 2, 1, 2, 1, 2, 1, 2]),
    # n larger than the hypothesis length (orders > 2 have no n-grams at all).
    "n_exceeds_hyp_len": ([[1, 2, 3, 4, 5]], [1, 2]),
    "single_token": ([[1, 2, 3], [1]], [1]),
    "empty_hypothesis": ([[1, 2, 3]], []),
    # Tie in closest reference length (11 and 13 for length 12): the shorter wins,
    # so there is no brevity penalty.
    "closest_length_tie": ([[1] * 13, [2] * 11], [1] * 12),
    "closest_length_tie_reversed": ([[2] * 11, [1] * 13], [1] * 12),
    "different_ref_lengths": ([[1, 2], [1, 2, 3, 4, 5, 6], [3] * 10], [1, 2, 3, 4, 5]),
    "identical": ([[1, 2, 3, 4, 5, 6]], [1, 2, 3, 4, 5, 6]),
    "empty_reference_among_refs": ([[], [1, 2, 3, 4]], [1, 2, 3]),
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_edge_cases_match_nltk(case, n):
    references, hypothesis = EDGE_CASES[case]
    ours = BLEU(references).sentence_scores([hypothesis], n)[0]
    assert ours == pytest.approx(nltk_bleu(references, hypothesis, n), abs=ATOL)


def test_edge_case_values_are_what_the_convention_says():
    def one(case, n):
        references, hypothesis = EDGE_CASES[case]
        return BLEU(references).sentence_scores([hypothesis], n)[0]

    assert one("no_overlap", 4) == 0.0
    assert one("empty_hypothesis", 2) == 0.0
    assert one("identical", 5) == 1.0
    # 4 unigram matches of 4; bigrams 0/3 -> 0.1/3 (method1); identical length -> BP 1.
    assert one("unigrams_only", 2) == pytest.approx(math.sqrt(1.0 * 0.1 / 3), abs=ATOL)
    # Unigram "1" clipped at 3 (its max in one reference; summing references would
    # allow 5) of 5; bigram (1, 1) occurs at most once per reference -> 1 of 4.
    # Closest reference length is 4 (|5-3| = 2 > |5-4| = 1) and 5 > 4 -> no BP.
    assert one("clipping_single_ref_max", 2) == pytest.approx(
        math.sqrt(3 / 5 * 1 / 4), abs=ATOL
    )
    # Tie between 11 and 13 resolved to 11 < 12: no penalty; 12 of 12 unigrams match,
    # 11 of 11 bigrams -> 1.0. Choosing 13 would have given exp(1 - 13/12).
    assert one("closest_length_tie", 2) == 1.0
    assert one("closest_length_tie_reversed", 2) == 1.0
    # Length 3 vs closest reference 7: BP = exp(1 - 7/3), all precisions 1.
    assert one("shorter_than_all_refs", 3) == pytest.approx(math.exp(1 - 7 / 3), abs=ATOL)
    # Length 2 < n = 4: orders 3 and 4 have no n-grams, each smoothed to 0.1 / 1.
    assert one("n_exceeds_hyp_len", 4) == pytest.approx(
        math.exp(1 - 5 / 2) * (1 * 1 * 0.1 * 0.1) ** 0.25, abs=ATOL
    )


def test_array_and_tensor_inputs_equal_list_inputs():
    rng = random.Random(11)
    references = random_sentences(rng, 10, 4, max_len=8, min_len=8)
    hypotheses = random_sentences(rng, 10, 4, max_len=8, min_len=8)
    expected = BLEU(references).sentence_scores(hypotheses, 3)
    np.testing.assert_array_equal(
        BLEU(np.array(references)).sentence_scores(np.array(hypotheses), 3), expected
    )
    np.testing.assert_array_equal(
        BLEU(torch.tensor(references)).sentence_scores(torch.tensor(hypotheses), 3),
        expected,
    )


def test_invalid_arguments_raise():
    with pytest.raises(ValueError):
        BLEU([])
    with pytest.raises(ValueError):
        BLEU([[1, 2]], max_n=0)
    scorer = BLEU([[1, 2, 3]], max_n=3)
    with pytest.raises(ValueError):
        scorer.sentence_scores([[1, 2]], 4)  # above max_n
    with pytest.raises(ValueError):
        scorer.sentence_scores([[1, 2]], 0)
    with pytest.raises(ValueError):
        scorer.corpus_mean([], 2)


# ------------------------------------------------------------------- smoothing
def nltk_unsmoothed(references, hypothesis, weights):
    with warnings.catch_warnings():  # NLTK warns about every order without a match
        warnings.simplefilter("ignore", UserWarning)
        return float(sentence_bleu(references, hypothesis, weights=weights))


def nltk32_unsmoothed(references, hypothesis, n):
    """NLTK 3.2.x's unsmoothed BLEU-n: orders without a match are left out of the sum
    (their weights are not renormalised), i.e. today's NLTK with the weights cut at the
    highest matching order m: BP * exp(sum_(k <= m) log(p_k) / n)."""
    m = 0
    while m < n and modified_precision(references, hypothesis, m + 1).numerator > 0:
        m += 1
    return 0.0 if m == 0 else nltk_unsmoothed(references, hypothesis, (1 / n,) * m)


@pytest.mark.parametrize("seed", range(4))
def test_unsmoothed_parity_with_nltk(seed):
    rng = random.Random(200 + seed)
    references = random_sentences(rng, 20, 4 + 2 * seed, min_len=1)
    hypotheses = random_sentences(rng, 25, 4 + 2 * seed)
    for n in range(1, 6):
        scorer = BLEU(references, max_n=n, smoothing="none")
        expected = [nltk_unsmoothed(references, h, (1 / n,) * n) for h in hypotheses]
        # Relative: the scores of sentences without a match of every order are ~1e-100.
        np.testing.assert_allclose(scorer.sentence_scores(hypotheses, n), expected, rtol=1e-12, atol=0)
        legacy = BLEU(references, max_n=n, smoothing="none_nltk32")
        expected = [nltk32_unsmoothed(references, h, n) for h in hypotheses]
        np.testing.assert_allclose(legacy.sentence_scores(hypotheses, n), expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_unsmoothed_edge_cases_match_nltk(case):
    references, hypothesis = EDGE_CASES[case]
    for n in (2, 3, 4):
        none = BLEU(references, smoothing="none").sentence_scores([hypothesis], n)[0]
        assert none == pytest.approx(nltk_unsmoothed(references, hypothesis, (1 / n,) * n), rel=1e-12, abs=0)
        legacy = BLEU(references, smoothing="none_nltk32").sentence_scores([hypothesis], n)[0]
        assert legacy == pytest.approx(nltk32_unsmoothed(references, hypothesis, n), rel=1e-12, abs=0)


def test_the_three_smoothings_on_a_sentence_without_a_bigram_match():
    references, hypothesis = EDGE_CASES["unigrams_only"]  # 4 of 4 unigrams, 0 of 3 bigrams
    scores = {s: BLEU(references, smoothing=s).sentence_scores([hypothesis], 2)[0]
              for s in ("method1", "none", "none_nltk32")}
    assert scores["method1"] == pytest.approx(math.sqrt(1.0 * 0.1 / 3), abs=ATOL)
    assert 0 < scores["none"] < 1e-150  # exp(log(2.2e-308) / 2)
    assert scores["none_nltk32"] == pytest.approx(1.0 ** 0.5, abs=ATOL)  # the bigram term is left out
    with pytest.raises(ValueError, match="smoothing"):
        BLEU(references, smoothing="method7")


def test_bleu_reward_defaults_to_the_authors_unsmoothed_bleu():
    references = torch.tensor([[1, 2, 3, 4, 5, 6], [2, 3, 7, 7, 8, 9]])
    hypotheses = torch.tensor([[4, 3, 2, 1, 9, 8], [1, 2, 3, 9, 9, 9], [1, 2, 3, 4, 5, 6]])
    rows = hypotheses.tolist()
    default = BLEUReward(references, n=3)(hypotheses)
    expected = [nltk32_unsmoothed(references.tolist(), h, 3) for h in rows]
    np.testing.assert_allclose(default.numpy(), np.float32(expected), rtol=0, atol=1e-7)
    method1 = BLEUReward(references, n=3, smoothing="method1")(hypotheses)
    np.testing.assert_allclose(method1.numpy(), np.float32([nltk_bleu(references.tolist(), h, 3) for h in rows]),
                               rtol=0, atol=1e-7)
    none = BLEUReward(references, n=3, smoothing="none")(hypotheses)
    assert none[0] == 0.0 and none[2] == 1.0  # no bigram match: ~1e-103, 0 in float32


# ---------------------------------------------------------------------- Self-BLEU


@pytest.mark.parametrize("seed", range(3))
def test_self_bleu_parity_with_brute_force_nltk(seed):
    rng = random.Random(100 + seed)
    samples = random_sentences(rng, 25, 4, max_len=15)
    samples += [list(samples[0]), list(samples[1])]  # duplicates: top-2 ties
    scorer = SelfBLEU(samples, max_n=5)
    for n in (2, 3, 4, 5):
        expected = nltk_self_bleu_scores(samples, n)
        np.testing.assert_allclose(scorer.sentence_scores(n), expected, rtol=0, atol=ATOL)
        assert self_bleu(samples, n) == pytest.approx(np.mean(expected), abs=ATOL)


def test_self_bleu_length_handling_excludes_own_length():
    # Each length occurs once, so the closest *other* length must be used for BP.
    samples = [[1] * 3, [1] * 5, [1] * 6, [1] * 10, [1] * 14]
    for n in (2, 3):
        np.testing.assert_allclose(
            SelfBLEU(samples).sentence_scores(n),
            nltk_self_bleu_scores(samples, n),
            rtol=0,
            atol=ATOL,
        )


def test_self_bleu_of_identical_sentences_is_one():
    samples = [[4, 8, 15, 16, 23, 42]] * 5
    for n in (2, 3, 4, 5):
        assert self_bleu(samples, n) == 1.0


def test_sentence_is_not_scored_against_itself():
    # Two sentences without a shared token: including self would give 1.0 each.
    assert self_bleu([[1, 2, 3, 4], [5, 6, 7, 8]], 2) == 0.0
    # One unique sentence among near-copies: it alone scores 0, the copies score 1.
    samples = [[1, 2, 3, 4, 5]] * 4 + [[9, 8, 7, 6, 5 + 100]]
    scores = SelfBLEU(samples).sentence_scores(3)
    np.testing.assert_array_equal(scores, [1.0, 1.0, 1.0, 1.0, 0.0])
    # A sentence whose repeated n-grams occur only in itself is clipped by the others.
    samples = [[1, 1, 1, 1], [1, 2, 3, 4], [2, 3, 4, 1]]
    np.testing.assert_allclose(
        SelfBLEU(samples).sentence_scores(2),
        nltk_self_bleu_scores(samples, 2),
        rtol=0,
        atol=ATOL,
    )


def test_self_bleu_sample_size_subset_is_seeded_and_exact():
    rng = random.Random(5)
    samples = random_sentences(rng, 60, 4, max_len=12)
    a = SelfBLEU(samples, max_n=4, sample_size=20, seed=1)
    b = SelfBLEU(samples, max_n=4, sample_size=20, seed=1)
    c = SelfBLEU(samples, max_n=4, sample_size=20, seed=2)
    assert a.sample_size == 20 and len(a.indices) == 20 == len(set(a.indices.tolist()))
    np.testing.assert_array_equal(a.indices, b.indices)
    assert not np.array_equal(np.sort(a.indices), np.sort(c.indices))
    subset = [samples[i] for i in a.indices]
    expected = nltk_self_bleu_scores(subset, 4)
    np.testing.assert_allclose(a.sentence_scores(4), expected, rtol=0, atol=ATOL)
    assert self_bleu(samples, 4, sample_size=20, seed=1) == pytest.approx(
        np.mean(expected), abs=ATOL
    )
    full = SelfBLEU(samples, sample_size=None)
    assert full.sample_size == 60


def test_self_bleu_invalid_sizes_raise():
    with pytest.raises(ValueError):
        SelfBLEU([[1, 2, 3]])
    with pytest.raises(ValueError):
        SelfBLEU([[1, 2], [2, 3]], sample_size=3)
    with pytest.raises(ValueError):
        SelfBLEU([[1, 2], [2, 3], [3, 4]], sample_size=1)


def test_max_n_takes_numpy_integers_as_the_orders_do() -> None:
    """Before, BLEU(max_n=np.int64(3)) was refused while orders accepted numpy integers."""
    refs = [[1, 2, 3, 4], [2, 3, 4, 5]]
    assert BLEU(refs, max_n=np.int64(3)).max_n == 3 and type(BLEU(refs, max_n=np.int64(3)).max_n) is int
    assert SelfBLEU(refs, max_n=np.int64(2)).mean(2) == SelfBLEU(refs, max_n=2).mean(2)
    for bad in (True, 0, 2.0):
        with pytest.raises(ValueError, match="max_n must be a positive int"):
            BLEU(refs, max_n=bad)
