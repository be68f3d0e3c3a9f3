"""cxrvqa.tools.uncertainty: intervals checked against their definitions, tails against exact sums."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxrvqa.tools.uncertainty import Z95, mcnemar_exact, paired_difference, wilson


def exact_tail(k: int, n: int, p: Fraction, upward: bool) -> Fraction:
    """P(X >= k) or P(X <= k) for X ~ Binomial(n, p), in exact rationals."""
    terms = range(k, n + 1) if upward else range(0, k + 1)
    return sum((math.comb(n, j) * p ** j * (1 - p) ** (n - j) for j in terms), Fraction(0))


@given(st.integers(1, 10**6).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_bounds_solve_its_quadratic(case: tuple[int, int]) -> None:
    # Wilson's bounds are the p with |share - p| = z * sqrt(p (1 - p) / n).
    correct, total = case
    share = correct / total
    low, high = wilson(correct, total)
    assert 0.0 <= low <= share <= high <= 1.0
    for bound in (low, high):
        assert (share - bound) ** 2 == pytest.approx(Z95 ** 2 * bound * (1 - bound) / total,
                                                     rel=1e-9, abs=1e-15)


def test_wilson_of_nothing_is_everything() -> None:
    assert wilson(0, 0) == (0.0, 1.0)
    assert wilson(5, 5)[1] == 1.0 and wilson(5, 5)[0] < 1.0  # no collapse to a point


@settings(max_examples=200)
@given(st.integers(0, 150), st.integers(0, 150))
def test_mcnemar_exact_is_twice_the_smaller_binomial_tail(first: int, second: int) -> None:
    pairs = first + second
    expected = (1.0 if pairs == 0 else
                min(1.0, float(2 * exact_tail(min(first, second), pairs, Fraction(1, 2), False))))
    assert mcnemar_exact(first, second) == pytest.approx(expected, rel=1e-12, abs=1e-300)
    assert mcnemar_exact(first, second) == mcnemar_exact(second, first)


def test_mcnemar_on_a_large_split_is_fast_and_right() -> None:
    # Normal approximation with continuity correction, good at this size: z = (|b-c| - 1) / sqrt(b+c)
    z = (1000 - 1) / math.sqrt(61000)
    assert mcnemar_exact(30000, 31000) == pytest.approx(math.erfc(z / math.sqrt(2)), rel=0.01)
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


def test_the_difference_interval_is_bonett_and_prices() -> None:
    # By hand: 10 and 2 discordant of 100 -> shares 11/102 and 3/102, centre 8/102,
    # half-width z * sqrt((14/102 - (8/102)^2) / 102).
    difference, low, high = paired_difference(10, 2, 100)
    half = Z95 * math.sqrt((14 / 102 - (8 / 102) ** 2) / 102)
    assert difference == 0.08
    assert (low, high) == pytest.approx((8 / 102 - half, 8 / 102 + half), rel=1e-12)
    assert paired_difference(0, 0, 0) == (0.0, 0.0, 0.0)
    assert paired_difference(0, 0, 50)[1] < 0 < paired_difference(0, 0, 50)[2]


@pytest.mark.parametrize(("p10", "p01", "n"), [
    (0.10, 0.02, 13_793), (0.10, 0.02, 1_000), (0.20, 0.02, 500), (0.30, 0.0, 300),
    (0.10, 0.10, 500), (0.01, 0.0, 200)])
def test_the_difference_interval_covers_the_true_difference(p10: float, p01: float,
                                                            n: int) -> None:
    # The review of 2026-12-05 found the first interval (exact, but conditional on the number
    # of discordant records) covering 35-88 % in such cases. Seeded draws of the four cells.
    rng = np.random.default_rng(20261205)
    draws = rng.multinomial(n, [p10, p01, 1 - p10 - p01], size=2000)
    covered = 0
    for only_first, only_second, _ in draws:
        _, low, high = paired_difference(int(only_first), int(only_second), n)
        covered += low <= p10 - p01 <= high
    assert covered / len(draws) >= 0.93, covered / len(draws)
