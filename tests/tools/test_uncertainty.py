"""cxrvqa.tools.uncertainty: intervals checked against their definitions, tails against exact sums."""

from __future__ import annotations

import math
from fractions import Fraction

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


@settings(max_examples=300)
@given(st.integers(0, 60), st.integers(0, 60), st.integers(0, 100))
def test_the_difference_interval_excludes_zero_exactly_when_mcnemar_rejects(
        first: int, second: int, agreeing: int) -> None:
    total = first + second + agreeing
    if total == 0:
        return
    difference, low, high = paired_difference(first, second, total)
    assert difference == pytest.approx((first - second) / total)
    assert low <= difference <= high
    p = mcnemar_exact(first, second)
    if abs(p - 0.05) > 1e-9:
        assert (low > 0 or high < 0) == (p < 0.05), (low, high, p)


@settings(max_examples=100)
@given(st.integers(1, 80).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_the_interval_bounds_leave_two_and_a_half_percent_each(case: tuple[int, int]) -> None:
    # Mapped back to the proportion of discordant pairs the first model wins, each bound is
    # the Clopper-Pearson one: the binomial tail beyond it is exactly 2.5 %.
    first, pairs = case
    _, low, high = paired_difference(first, pairs - first, pairs)  # total = pairs
    low_share, high_share = (low + 1) / 2, (high + 1) / 2
    if first > 0:
        assert float(exact_tail(first, pairs, Fraction(low_share), True)) == pytest.approx(0.025)
    if first < pairs:
        assert float(exact_tail(first, pairs, Fraction(high_share), False)) == pytest.approx(0.025)


def test_no_discordant_question_gives_a_wilson_band() -> None:
    assert paired_difference(0, 0, 50) == (0.0, -wilson(0, 50)[1], wilson(0, 50)[1])
    assert paired_difference(0, 0, 0) == (0.0, 0.0, 0.0)
