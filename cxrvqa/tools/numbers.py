"""Whole numbers written as text (ids, byte counts), read one way by every tool."""

from __future__ import annotations

import re

__all__ = ["plain_int"]

# ASCII digits only: str.isdigit accepts "²", which int() refuses; 18 digits always fit int64.
_DIGITS = re.compile(r"[0-9]{1,18}")


def plain_int(text: str | None) -> int | None:
    """``text`` as an int when it is 1 to 18 ASCII digits (blanks around allowed), else None.

    Example:
        >>> plain_int(" 50414267"), plain_int("²"), plain_int("-1"), plain_int(None)
        (50414267, None, None, None)
    """
    if text is None or not _DIGITS.fullmatch(text.strip()):
        return None
    return int(text)
