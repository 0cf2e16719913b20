"""Quality-diversity frontiers (Caccia et al., "Language GANs Falling Short", ICLR 2020).

Sampling a generator at temperature t < 1 trades diversity for quality, so a method's
single point at t = 1 says little: it may only sit further along MLE's own curve. The fair
question is whether it beats MLE *at matched diversity*: how much better (or worse) its
quality is than the best quality MLE reaches, at any temperature, with the same diversity.

Points are (diversity, quality) pairs, each axis with its own direction ("higher" or
"lower" is better: NLL-test and Self-BLEU lower, BLEU higher; NLL-oracle lower). MLE's
frontier is its set of non-dominated points, joined by straight lines; a point's gap is
its quality minus the frontier's quality at its diversity, signed so that a positive gap
means better than MLE. A point outside the frontier's diversity range has no gap (NaN):
nothing of MLE's is comparable.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

Direction = Literal["higher", "lower"]


def _oriented(values: Sequence[float], better: Direction) -> np.ndarray:
    if better not in ("higher", "lower"):
        raise ValueError(f"better must be 'higher' or 'lower', got {better!r}")
    x = np.asarray(values, dtype=np.float64)
    return x if better == "higher" else -x


def pareto_front(diversity: Sequence[float], quality: Sequence[float], *, diversity_better: Direction,
                 quality_better: Direction) -> np.ndarray:
    """Indices of the non-dominated points, ordered from the most diverse to the least.
    A point is dominated when another is at least as good on both axes and better on one."""
    d, q = _oriented(diversity, diversity_better), _oriented(quality, quality_better)
    if d.shape != q.shape or d.ndim != 1 or d.size == 0:
        raise ValueError("diversity and quality must be non-empty sequences of the same length")
    if not (np.isfinite(d).all() and np.isfinite(q).all()):
        raise ValueError("frontier points must be finite")
    keep = [i for i in range(len(d))
            if not np.any((d >= d[i]) & (q >= q[i]) & ((d > d[i]) | (q > q[i])))]
    return np.array(sorted(keep, key=lambda i: (-d[i], q[i])), dtype=np.int64)


def matched_gap(diversity: float, quality: float, front_diversity: Sequence[float], front_quality: Sequence[float],
                *, diversity_better: Direction, quality_better: Direction) -> float:
    """Quality of (``diversity``, ``quality``) minus the frontier's quality at the same
    diversity (linear between the frontier's points), positive when the point is better.
    NaN when ``diversity`` lies outside the frontier's range."""
    order = pareto_front(front_diversity, front_quality, diversity_better=diversity_better, quality_better=quality_better)
    d = _oriented(front_diversity, diversity_better)[order][::-1]  # increasing diversity
    q = _oriented(front_quality, quality_better)[order][::-1]
    x = float(_oriented([diversity], diversity_better)[0])
    if not d[0] <= x <= d[-1]:
        return math.nan
    return float(_oriented([quality], quality_better)[0] - np.interp(x, d, q))
