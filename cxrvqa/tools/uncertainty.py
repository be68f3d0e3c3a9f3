"""How sure a score is: Wilson intervals for accuracies, McNemar's exact test for two models.

A test split of 13,793 questions measures an accuracy to about ±0.7 points, and one
template's few hundred questions to several points; ``evaluate`` prints these intervals so
that a difference between two models is not read into noise. Two models scored on the same
questions are compared record by record (paired): only the questions exactly one of them
answers correctly carry information, and McNemar's exact test asks whether those split
unevenly by more than chance.

Example:
    >>> [round(bound, 4) for bound in wilson(81, 263)]
    [0.2553, 0.3662]
    >>> round(mcnemar_exact(10, 2), 4)
    0.0386
    >>> [round(value, 4) for value in paired_difference(10, 2, 100)]
    [0.08, 0.0038, 0.115]
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["Z95", "mcnemar_exact", "paired_difference", "wilson"]

Z95 = 1.959963984540054  # the two-sided 95 % point of the standard normal


def wilson(correct: int, total: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``correct / total`` (0 to 1 when ``total`` is 0).

    Unlike the normal-approximation interval it stays inside [0, 1] and does not collapse to
    a point at 0 or ``total`` correct, which matters for templates with few questions.
    """
    if total <= 0:
        return 0.0, 1.0
    share = correct / total
    scale = 1 + z * z / total
    centre = (share + z * z / (2 * total)) / scale
    half = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total)) / scale
    # At 0 or all correct a bound is exactly 0 or 1; the formula leaves rounding error there.
    return (0.0 if correct == 0 else max(0.0, centre - half),
            1.0 if correct == total else min(1.0, centre + half))


def mcnemar_exact(only_first: int, only_second: int) -> float:
    """Two-sided p-value of McNemar's exact test on the discordant pairs.

    ``only_first`` questions were right for the first model only, ``only_second`` for the
    second only. Under the null hypothesis each discordant question is a fair coin, so the
    p-value is twice the binomial tail of the smaller count (at most 1).
    """
    if min(only_first, only_second) < 0:
        raise ValueError("counts of discordant pairs cannot be negative")
    pairs = only_first + only_second
    if pairs == 0:
        return 1.0
    return min(1.0, 2 * _tail(min(only_first, only_second), pairs, 0.5, -1))


def paired_difference(only_first: int, only_second: int, total: int,
                      z: float = Z95) -> tuple[float, float, float]:
    """First minus second model's accuracy on the same ``total`` questions, with its interval.

    The difference is (only_first - only_second) / total. Its interval is conditional on the
    d discordant questions, as McNemar's test is: only_first ~ Binomial(d, pi), and the exact
    (Clopper-Pearson) interval of pi maps to d / total * (2 pi - 1). So the interval excludes 0
    exactly when ``mcnemar_exact`` is below 0.05 (for ``z`` = ``Z95``). With no discordant
    question it is +-the Wilson upper bound of 0 discordant in ``total``.
    """
    if total <= 0:
        return 0.0, 0.0, 0.0
    pairs = only_first + only_second
    difference = (only_first - only_second) / total
    if pairs == 0:
        bound = wilson(0, total, z)[1]
        return difference, -bound, bound
    alpha = math.erfc(z / math.sqrt(2))  # 0.05 for Z95
    low, high = _clopper_pearson(only_first, pairs, alpha)
    return difference, pairs / total * (2 * low - 1), pairs / total * (2 * high - 1)


def _clopper_pearson(successes: int, trials: int, alpha: float) -> tuple[float, float]:
    """The exact interval of a binomial proportion: each bound leaves ``alpha / 2`` beyond it."""
    share = successes / trials
    low = 0.0 if successes == 0 else _bisect(  # P(X >= k) grows with p
        lambda p: _tail(successes, trials, p, +1) < alpha / 2, 0.0, share)
    high = 1.0 if successes == trials else _bisect(  # P(X <= k) shrinks as p grows
        lambda p: _tail(successes, trials, p, -1) >= alpha / 2, share, 1.0)
    return low, high


def _bisect(below: Callable[[float], bool], low: float, high: float) -> float:
    """The point in [low, high] where ``below`` turns from true to false."""
    for _ in range(60):
        middle = (low + high) / 2
        if below(middle):
            low = middle
        else:
            high = middle
    return (low + high) / 2


def _tail(k: int, n: int, p: float, step: int) -> float:
    """P(X >= k) (``step`` +1) or P(X <= k) (``step`` -1) for X ~ Binomial(n, p).

    Summed from k outwards; once past the mode the terms only shrink, and the sum stops when
    they no longer change it (callers start on the far side of the mode, so a tail of n in the
    hundreds of thousands takes a few thousand terms).
    """
    if p <= 0.0 or p >= 1.0:
        return float((step > 0) == (p >= 1.0) or (k == 0 if step > 0 else k == n))
    log_p, log_q, log_n = math.log(p), math.log1p(-p), math.lgamma(n + 1)
    total, j = 0.0, k
    while 0 <= j <= n:
        term = math.exp(log_n - math.lgamma(j + 1) - math.lgamma(n - j + 1)
                        + j * log_p + (n - j) * log_q)
        total += term
        past_mode = j + 1 >= (n + 1) * p if step > 0 else j <= (n + 1) * p
        if past_mode and term <= total * 1e-17:  # also when they underflow to 0 from the start
            break
        j += step
    return total
