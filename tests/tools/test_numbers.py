"""tools/numbers: the one reading of whole numbers written as text."""

from __future__ import annotations

import pytest

from cxrvqa.tools.numbers import plain_int


@pytest.mark.parametrize(("text", "number"), [
    ("1024", 1024), (" 7 ", 7), ("0012", 12), ("9" * 18, 10**18 - 1),
    (None, None), ("", None), ("-1", None), ("+1", None), ("1e3", None), ("1_000", None),
    ("\u00b2", None),   # "²": str.isdigit says yes, int() refuses it
    ("\u0663", None),   # Arabic-Indic three: int() reads it, an id never holds it
    ("9" * 19, None),    # more than int64 always holds
])
def test_plain_int(text: str | None, number: int | None) -> None:
    assert plain_int(text) == number
