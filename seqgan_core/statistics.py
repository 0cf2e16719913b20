"""Statistics over seeds for the comparison table: Student-t intervals and paired differences.

A GAN run is one draw from a distribution over seeds, so every figure of the comparison
table is a mean over seeds with its interval, and a method is called better or worse than
a baseline only when the paired interval of the difference excludes zero (Caccia et al.,
"Language GANs Falling Short": compare over seeds and temperatures, not single draws).

* `summarize`: mean, sample standard deviation (ddof = 1), n, and the Student-t interval
  mean +- t_(n-1) * sd / sqrt(n) (95% by default).
* `paired_difference`: the paired t interval of method - baseline, the runs paired by seed
  (the same seed gives both runs the same data and initial streams, so most of the
  seed-to-seed variation cancels in the difference), and a verdict.

Student-t quantiles are computed, not looked up: the t CDF is the regularized incomplete
beta function, evaluated by its continued fraction (modified Lentz), and inverted by
bisection. numpy and the standard library only, so the module has no SciPy dependency.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

_TINY = 1e-300  # Lentz's guard against a zero denominator
_CF_TOLERANCE = 1e-15
# The continued fraction needs O(sqrt(max(a, b))) terms; a = df / 2 reaches 5e5 at df = 1e6.
_CF_MAX_TERMS = 100_000


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) = B(x; a, b) / B(a, b) for a, b > 0 and 0 <= x <= 1.

    The continued fraction of I_x(a, b) converges fast for x < (a + 1) / (a + b + 2);
    above that point the symmetry I_x(a, b) = 1 - I_(1-x)(b, a) brings x below it.
    """
    if not (a > 0 and b > 0):
        raise ValueError(f"the incomplete beta function needs a, b > 0, got a={a}, b={b}")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x must lie in [0, 1], got {x}")
    if x in (0.0, 1.0):
        return x
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - regularized_incomplete_beta(b, a, 1.0 - x)
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """1 / (1 + d_1 / (1 + d_2 / (1 + ...))) with the incomplete beta's coefficients
    d_(2m+1) = -(a+m)(a+b+m) x / ((a+2m)(a+2m+1)), d_(2m) = m(b-m) x / ((a+2m-1)(a+2m)),
    evaluated front to back by the modified Lentz method."""

    def guarded(value: float) -> float:
        return value if abs(value) > _TINY else _TINY

    c, d = 1.0, 1.0 / guarded(1.0 - (a + b) * x / (a + 1.0))
    fraction = d
    for m in range(1, _CF_MAX_TERMS + 1):
        even = m * (b - m) * x / ((a + 2 * m - 1.0) * (a + 2 * m))
        d = 1.0 / guarded(1.0 + even * d)
        c = guarded(1.0 + even / c)
        fraction *= d * c
        odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1.0))
        d = 1.0 / guarded(1.0 + odd * d)
        c = guarded(1.0 + odd / c)
        fraction *= d * c
        if abs(d * c - 1.0) < _CF_TOLERANCE:
            return fraction
    raise ArithmeticError(f"the incomplete beta continued fraction did not converge for a={a}, b={b}, x={x}")


def student_t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` > 0 degrees of freedom:
    the tail P(T > |t|) is I_(df / (df + t^2))(df / 2, 1 / 2) / 2."""
    if not df > 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}")
    if math.isnan(t):  # would reach the incomplete beta as its x, and be reported as such
        raise ValueError("t is NaN")
    if t == 0:
        return 0.5
    tail = 0.5 * regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def student_t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p, by bisection on the CDF (monotone, so bisection cannot
    fail) to float precision."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie in (0, 1), got {p}")
    if p < 0.5:
        return -student_t_quantile(1.0 - p, df)
    if p == 0.5:
        return 0.0
    low, high = 0.0, 1.0
    while student_t_cdf(high, df) < p:
        low, high = high, 2.0 * high
    while high - low > 4 * math.ulp(high):
        middle = 0.5 * (low + high)
        if student_t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


@dataclass(frozen=True)
class Summary:
    """A metric over seeds: mean, sd (ddof = 1), n, and the Student-t interval of the mean
    (NaN for n = 1, where the spread is unknown)."""

    mean: float
    sd: float
    n: int
    ci_low: float
    ci_high: float


def summarize(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> Summary:
    """Mean, sd and the Student-t interval mean +- t_(1 - alpha/2, n-1) sd / sqrt(n)
    (95% by default) of one metric over seeds."""
    x = _finite_array(values, "values")
    n = len(x)
    mean = float(x.mean())
    if n == 1:
        return Summary(mean, math.nan, 1, math.nan, math.nan)
    sd = float(x.std(ddof=1))
    half = _t_multiplier(confidence, n - 1) * sd / math.sqrt(n)
    return Summary(mean, sd, n, mean - half, mean + half)


@dataclass(frozen=True)
class PairedDifference:
    """method - baseline over paired seeds: mean difference, its paired t interval, and
    the verdict "better", "worse" or "no difference" (the interval contains 0, or n < 2)."""

    mean_diff: float
    ci_low: float
    ci_high: float
    verdict: Literal["better", "worse", "no difference"]
    n: int


def paired_difference(
    method_values: Sequence[float] | Mapping[int, float],
    baseline_values: Sequence[float] | Mapping[int, float],
    *,
    better: Literal["higher", "lower"],
    confidence: float = 0.95,
) -> PairedDifference:
    """Paired t, 95% (by default): the interval of the mean of d_s = method_s - baseline_s
    over seeds s, mean(d) +- t_(1 - alpha/2, n-1) sd(d) / sqrt(n).

    Values pair by seed: two mappings {seed: value} with the same seeds, or two sequences
    in the same seed order. ``better`` says which direction is an improvement for this
    metric ("lower" for NLL-oracle and NLL-test, "higher" for BLEU). The method is
    "better" or "worse" only when the interval excludes 0.
    """
    if better not in ("higher", "lower"):
        raise ValueError(f"better must be 'higher' or 'lower', got {better!r}")
    method, baseline = _paired(method_values, baseline_values)
    summary = summarize(method - baseline, confidence)
    verdict = "no difference"
    if summary.ci_low > 0 or summary.ci_high < 0:  # both False for a NaN interval
        improved = (summary.ci_low > 0) == (better == "higher")
        verdict = "better" if improved else "worse"
    return PairedDifference(summary.mean, summary.ci_low, summary.ci_high, verdict, summary.n)


def _t_multiplier(confidence: float, df: int) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    return student_t_quantile(0.5 + confidence / 2.0, df)


def _finite_array(values, what: str) -> np.ndarray:
    raw = np.asarray(values)
    if raw.dtype.kind in "US":  # a float conversion would parse "1.5": unparsed text from a file would pass
        raise TypeError(f"{what} must be numbers, got text: {raw.ravel()[:5].tolist()!r}")
    x = raw.astype(np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{what} must be a non-empty 1-D sequence, got shape {x.shape}")
    if not np.isfinite(x).all():
        # A diverged seed is a finding to report, not a number to average away.
        raise ValueError(f"{what} hold non-finite entries at positions {np.flatnonzero(~np.isfinite(x)).tolist()}")
    return x


def _paired(method_values, baseline_values) -> tuple[np.ndarray, np.ndarray]:
    """The two samples in one seed order (mappings by seed, sequences as given)."""
    if isinstance(method_values, Mapping) != isinstance(baseline_values, Mapping):
        raise TypeError("pass both values as {seed: value} mappings, or both as sequences in the same seed order")
    if isinstance(method_values, Mapping):
        if method_values.keys() != baseline_values.keys():
            raise ValueError(f"runs do not pair by seed: method only {sorted(method_values.keys() - baseline_values.keys())}, "
                             f"baseline only {sorted(baseline_values.keys() - method_values.keys())}")
        seeds = sorted(method_values)
        method_values = [method_values[s] for s in seeds]
        baseline_values = [baseline_values[s] for s in seeds]
    method = _finite_array(method_values, "method values")
    baseline = _finite_array(baseline_values, "baseline values")
    if method.shape != baseline.shape:
        raise ValueError(f"{len(method)} method values do not pair with {len(baseline)} baseline values")
    return method, baseline
