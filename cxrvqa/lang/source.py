"""Locate positions in program text: spans, lines and columns.

Lines and columns are 1-based and count code points, as Lark reports them.
Only ``\\n`` ends a line (Lark counts lines the same way), so ``str.split``
is used instead of ``str.splitlines``, which also splits on form feeds and
other separators.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import PurePath

__all__ = ["Source", "Span"]


@dataclass(frozen=True, slots=True)
class Span:
    """A region of a source text.

    Args:
        start: offset of the first character.
        end: offset one past the last character.
        line: 1-based line of ``start``.
        column: 1-based column of ``start``.
        end_line: 1-based line of ``end``.
        end_column: 1-based column of ``end``.
    """

    start: int
    end: int
    line: int
    column: int
    end_line: int
    end_column: int


@dataclass(frozen=True, slots=True)
class Source:
    """A program text and the path it was read from (None for strings).

    Example:
        >>> Source("a\\nbc", "x.cxr").point(3).column
        2
    """

    text: str
    path: str | None = None
    # Offsets where each line starts, computed once on first use: every diagnostic needs a
    # line and column, and recounting from the start each time is quadratic in the text.
    _starts: list[int] | None = field(default=None, init=False, repr=False, compare=False)

    def _line_starts(self) -> list[int]:
        if self._starts is None:
            starts = [0]
            find = self.text.find
            at = find("\n")
            while at >= 0:
                starts.append(at + 1)
                at = find("\n", at + 1)
            object.__setattr__(self, "_starts", starts)
        return self._starts  # type: ignore[return-value]

    @property
    def name(self) -> str:
        """The path as diagnostics print it."""
        return self.path if self.path is not None else "<string>"

    @property
    def stem(self) -> str | None:
        """The file name without its suffix, or None for a string."""
        return PurePath(self.path).stem if self.path is not None else None

    def line_text(self, line: int) -> str:
        """The text of 1-based ``line`` without its newline ('' past the end)."""
        starts = self._line_starts()
        if not 0 < line <= len(starts):
            return ""
        end = starts[line] - 1 if line < len(starts) else len(self.text)
        return self.text[starts[line - 1]:end]

    def point(self, offset: int) -> Span:
        """An empty span at ``offset`` (clamped to the text)."""
        offset = max(0, min(offset, len(self.text)))
        starts = self._line_starts()
        line = bisect_right(starts, offset)
        column = offset - starts[line - 1] + 1
        return Span(offset, offset, line, column, line, column)

    def end_of_input(self) -> Span:
        """Where an unexpected end of input is reported: just after the last visible character."""
        return self.point(len(self.text.rstrip()))
