"""How sure a score is: Wilson intervals for accuracies, McNemar's exact test for two models.

A test split of 13,793 questions measures an accuracy to ±0.8 points at most, and one
template's few hundred questions to several points; ``evaluate`` prints these intervals so
that a difference between two models is not read into noise. Two models scored on the same
questions are compared record by record (paired): McNemar's exact test asks whether the
questions exactly one of them answers correctly split unevenly by more than chance, and the
difference of their accuracies gets an adjusted Wald interval for paired proportions.

Example:
    >>> [round(bound, 4) for bound in wilson(81, 263)]
    [0.2553, 0.3662]
    >>> round(mcnemar_exact(10, 2), 4)
    0.0386
    >>> [round(value, 4) for value in paired_difference(10, 2, 100)]
    [0.08, 0.0082, 0.1487]
"""

from __future__ import annotations

import math

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
    return min(1.0, 2 * _fair_coin_tail(min(only_first, only_second), pairs))


def paired_difference(only_first: int, only_second: int, total: int,
                      z: float = Z95) -> tuple[float, float, float]:
    """First minus second model's accuracy on the same ``total`` questions, with its interval.

    The difference is (only_first - only_second) / total. Its interval is Bonett and Price's
    adjusted Wald interval for paired proportions (2012): each discordant share gets one
    pseudo-count, (n + 1) / (total + 2), and the Wald interval of their difference is taken with
    total + 2. Unlike an interval conditional on the number of discordant questions it allows for
    that number's own randomness, and unlike the plain Wald interval it keeps its coverage when a
    model never wins (0 in one cell). It need not agree with ``mcnemar_exact`` at the 5 % edge.
    """
    if total <= 0:
        return 0.0, 0.0, 0.0
    difference = (only_first - only_second) / total
    first = (only_first + 1) / (total + 2)
    second = (only_second + 1) / (total + 2)
    centre = first - second
    half = z * math.sqrt(max(0.0, first + second - centre * centre) / (total + 2))
    return difference, max(-1.0, centre - half), min(1.0, centre + half)


def _fair_coin_tail(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2) and k <= n / 2.

    Summed from k downwards, where the terms only shrink, in log space (n reaches the hundreds
    of thousands); the sum stops when a term no longer changes it, or underflows to 0.
    """
    log_n = math.lgamma(n + 1) - n * math.log(2)
    total = 0.0
    for j in range(k, -1, -1):
        term = math.exp(log_n - math.lgamma(j + 1) - math.lgamma(n - j + 1))
        total += term
        if term <= total * 1e-17:
            break
    return total
