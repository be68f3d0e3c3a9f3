"""Diagnostics: one problem in a program file, its stable code, and how ``cxrvqa check`` prints it.

A ``Diagnostic`` names its code (``ERROR_CODES``), a lower-case message, the span
and the source text it points into, and an optional hint. ``render()`` gives the
compiler-style text: ``path:line:col: error: message``, the source line and a caret.
``program_error`` wraps diagnostics in the ``ProgramError`` subclass of their family.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cxrvqa.errors import (
    ProgramError,
    ProgramHeaderError,
    ProgramNameError,
    ProgramSyntaxError,
    ProgramTypeError,
    printable,
)
from cxrvqa.lang.source import Source, Span

__all__ = ["ERROR_CODES", "Diagnostic", "program_error"]

# Codes are stable once released: tests/golden/errors holds one snapshot per code.
ERROR_CODES: dict[str, str] = {
    "E101": "unexpected token or character",
    "E102": "unexpected end of input",
    "E103": "'|' and '&' mixed without parentheses",
    "E104": "unterminated string",
    "E105": "number literal too large",
    "E106": "unknown function",
    "E107": "expression nested too deeply",
    "E201": "unknown name",
    "E202": "unknown parameter",
    "E203": "unknown vocabulary term",
    "E204": "name defined twice",
    "E205": "let never used",
    "E206": "a definition uses a program's param or let",
    "E207": "name already defined by a prelude",
    "E301": "operand kinds do not fit the operator",
    "E302": "wrong number of arguments",
    "E303": "body kind does not match 'returns'",
    "E304": "filter source or condition of the wrong kind",
    "E305": "set elements of mixed or non-scalar kinds",
    "E401": "template slot without a param",
    "E402": "param missing from a template",
    "E403": "param never used",
    "E404": "ignored param used",
    "E405": "param declared twice",
    "E406": "program name differs from the file name",
    "E407": "param names do not follow their kind",
    "E408": "unknown semantic type",
}


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in a program file.

    Args:
        code: an ``ERROR_CODES`` key, e.g. ``"E301"``.
        message: lower-case, no trailing period, user text in single quotes.
        span: where the problem is (None for programs built in code).
        source: the text the span points into (None for programs built in code).
        hint: an optional suggestion, e.g. ``did you mean 'left lung'?``.
    """

    code: str
    message: str
    span: Span | None = None
    source: Source | None = None
    hint: str | None = None

    def __post_init__(self) -> None:
        if self.code not in ERROR_CODES:
            raise ValueError(f"unknown diagnostic code {self.code!r}")

    def render(self) -> str:
        """The diagnostic as ``cxrvqa check`` prints it.

        Example:
            >>> src = Source("a |\\n", "x.cxr")
            >>> print(Diagnostic("E102", "unexpected end of input", src.end_of_input(), src).render())
            x.cxr:1:4: error: unexpected end of input
              a |
                 ^
        """
        # Control characters (a line break in a file name, a terminal escape in the text) are
        # shown escaped: each diagnostic line stays one line and cannot restyle the terminal.
        name = printable(self.source.name) if self.source is not None else "<program>"
        message = printable(self.message)
        if self.span is None or self.source is None:
            lines = [f"{name}: error: {message}"]
        else:
            # Tabs are expanded before placing the caret, so it lines up in a terminal.
            text = self.source.line_text(self.span.line)
            line = printable(text.expandtabs())
            indent = len(printable(text[: self.span.column - 1].expandtabs()))
            line, indent = _window(line, indent)
            lines = [
                f"{name}:{self.span.line}:{self.span.column}: error: {message}",
                f"  {line}",
                f"  {' ' * indent}^",
            ]
        if self.hint is not None:
            lines.append(f"  hint: {printable(self.hint)}")
        return "\n".join(lines)

    @property
    def sort_key(self) -> tuple[str, int, int, str]:
        """Order of reporting: by file, then position, then code."""
        line, column = (self.span.line, self.span.column) if self.span else (0, 0)
        return (self.source.name if self.source else "", line, column, self.code)


_WIDTH = 120  # a longer source line is shown as a window around the caret


def _window(line: str, caret: int) -> tuple[str, int]:
    """At most ``_WIDTH`` characters of ``line`` around ``caret`` ("…" marks cuts), and the caret."""
    if len(line) <= _WIDTH:
        return line, caret
    start = max(0, min(caret - _WIDTH // 2, len(line) - _WIDTH))
    shown = line[start:start + _WIDTH]
    if start:
        shown, caret = "…" + shown, caret - start + 1
    if start + _WIDTH < len(line):
        shown += "…"
    return shown, caret


_FAMILIES: dict[str, type[ProgramError]] = {
    "E1": ProgramSyntaxError,
    "E2": ProgramNameError,
    "E3": ProgramTypeError,
    "E4": ProgramHeaderError,
}


def program_error(diagnostics: Sequence[Diagnostic]) -> ProgramError:
    """The error to raise for ``diagnostics``: the family's class if they share one, else ProgramError."""
    families = {_FAMILIES[d.code[:2]] for d in diagnostics}
    cls = families.pop() if len(families) == 1 else ProgramError
    ordered = sorted(diagnostics, key=lambda d: d.sort_key)  # typed here, not by cls's parameter
    return cls(ordered)
