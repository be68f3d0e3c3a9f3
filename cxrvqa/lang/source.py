"""Locate positions in program text: spans, lines and columns.

Lines and columns are 1-based and count code points, as Lark reports them.
Only ``\\n`` ends a line (Lark counts lines the same way), so ``str.split``
is used instead of ``str.splitlines``, which also splits on form feeds and
other separators.
"""

from __future__ import annotations

from dataclasses import dataclass
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
        lines = self.text.split("\n")
        return lines[line - 1] if 0 < line <= len(lines) else ""

    def point(self, offset: int) -> Span:
        """An empty span at ``offset`` (clamped to the text)."""
        offset = max(0, min(offset, len(self.text)))
        line = self.text.count("\n", 0, offset) + 1
        column = offset - (self.text.rfind("\n", 0, offset) + 1) + 1
        return Span(offset, offset, line, column, line, column)

    def end_of_input(self) -> Span:
        """Where an unexpected end of input is reported: just after the last visible character."""
        return self.point(len(self.text.rstrip()))
