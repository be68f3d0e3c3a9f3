"""Tests for cxrvqa.build.labels internals that have a fast path beside the rule's definition."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxrvqa.build.labels import _sentence_numbers, _sentence_ranks
from cxrvqa.errors import DataError

_PARTS = st.sampled_from(["12", "007", "3", "", "x", "1e2", " 4", "-2", "2.5", "9" * 16, "a\nb",
                          "nan", "inf", "٣"])


def _defined(row_ids: list[str]) -> np.ndarray:
    """pipeline.md §4: the number after the last '|', as pd.to_numeric reads it."""
    last = pd.Series(row_ids, dtype=object).str.rsplit("|", n=1).str[-1]
    return pd.to_numeric(last, errors="coerce").to_numpy(dtype=np.float64)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(_PARTS, min_size=1, max_size=3).map("|".join), min_size=1, max_size=8))
def test_sentence_numbers_follow_the_definition(row_ids: list[str]) -> None:
    np.testing.assert_array_equal(_sentence_numbers(pd.Index(row_ids, dtype=object)),
                                  _defined(row_ids))


def test_ranks_order_rows_as_their_numbers_and_tie_equal_numbers() -> None:
    row_ids = pd.Series(["s|10", "s|9", "t|09", "s|100"], dtype="category")
    ranks = _sentence_ranks(row_ids, np.arange(4), "labels")
    assert ranks.tolist() == [1, 0, 0, 2]


def test_only_kept_rows_need_a_sentence_number() -> None:
    row_ids = pd.Series(["s|1", "no number", "s|2"], dtype="category")
    assert _sentence_ranks(row_ids, np.array([0, 2]), "labels").tolist() == [0, 1]
    with pytest.raises(DataError, match=r"labels: row_id 'no number' does not end with a sentence"):
        _sentence_ranks(row_ids, np.arange(3), "labels")
