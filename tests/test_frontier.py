"""Quality-diversity frontiers (seqgan_core.frontier) against hand computations."""
from __future__ import annotations

import math

import pytest

from seqgan_core.frontier import matched_gap, pareto_front

# MLE over temperatures on a synthetic task: NLL-test (diversity, lower better) rises on
# both sides of t = 1; NLL-oracle (quality, lower better) falls as samples get colder.
MLE_TEST = [6.0, 5.6, 5.5, 5.7, 6.2]    # t = 0.5, 0.75, 1.0, 1.25, 1.5
MLE_ORACLE = [6.5, 7.0, 7.5, 8.0, 8.6]
LOWER = {"diversity_better": "lower", "quality_better": "lower"}


def test_hot_points_are_dominated() -> None:
    # t = 1.25 and 1.5 are worse on both axes than t = 1.0: off the frontier.
    assert pareto_front(MLE_TEST, MLE_ORACLE, **LOWER).tolist() == [2, 1, 0]


def test_gap_at_matched_diversity_by_hand() -> None:
    # NLL-test 5.8 lies between t = 0.75 (5.6, 7.0) and t = 0.5 (6.0, 6.5): MLE reaches
    # NLL-oracle 7.0 - 0.5 * (0.2 / 0.4) = 6.75 there. A point at 6.60 is 0.15 better.
    assert matched_gap(5.8, 6.60, MLE_TEST, MLE_ORACLE, **LOWER) == pytest.approx(0.15)
    assert matched_gap(5.8, 6.90, MLE_TEST, MLE_ORACLE, **LOWER) == pytest.approx(-0.15)
    # MLE's own points have no gap.
    assert matched_gap(5.6, 7.0, MLE_TEST, MLE_ORACLE, **LOWER) == pytest.approx(0.0)


def test_sharpening_alone_is_no_gain() -> None:
    """A 'method' that is MLE sampled colder sits on MLE's curve: gap 0, although its
    NLL-oracle at its own temperature 1 beats MLE's temperature-1 figure by 0.75."""
    assert matched_gap(5.8, 6.75, MLE_TEST, MLE_ORACLE, **LOWER) == pytest.approx(0.0)


def test_outside_the_frontier_has_no_gap() -> None:
    assert math.isnan(matched_gap(5.4, 7.0, MLE_TEST, MLE_ORACLE, **LOWER))  # more diverse than MLE ever is
    assert math.isnan(matched_gap(6.5, 6.0, MLE_TEST, MLE_ORACLE, **LOWER))  # colder than MLE's coldest


def test_bleu_against_self_bleu() -> None:
    # Corpus: BLEU (quality) higher better, Self-BLEU (diversity) lower better; MLE colder =
    # more BLEU and more Self-BLEU. At Self-BLEU 0.5 MLE reaches BLEU 0.55; a point at 0.6 is +0.05.
    self_bleu, bleu = [0.3, 0.4, 0.6], [0.45, 0.5, 0.6]
    kw = {"diversity_better": "lower", "quality_better": "higher"}
    assert pareto_front(self_bleu, bleu, **kw).tolist() == [0, 1, 2]
    assert matched_gap(0.5, 0.6, self_bleu, bleu, **kw) == pytest.approx(0.05)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="better must be"):
        pareto_front([1.0], [1.0], diversity_better="up", quality_better="lower")
    with pytest.raises(ValueError, match="finite"):
        pareto_front([1.0, math.nan], [1.0, 2.0], **LOWER)
