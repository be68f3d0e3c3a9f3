"""Every error cxrvqa raises on purpose, in one tree; each class carries its command-line exit code.

    CxrvqaError               3  base; anything the user can fix
      UsageError              2  a command line that cannot be run as given
      ProgramError            1  a program file is wrong (carries diagnostics)
        ProgramSyntaxError       E1xx  the text does not parse (or calls an unknown function)
        ProgramNameError         E2xx  unknown parameter, name or vocabulary term
        ProgramTypeError         E3xx  operand kinds, arity, result type
        ProgramHeaderError       E4xx  template slots and parameters disagree
      EvaluationError         3  a program cannot be answered on these facts or arguments
      DataError               3  a source, question or built file is wrong or unreadable
      DownloadError           3  a download cannot go on (credentials, access, network, checksum)
      ExportError             3  the export extra is missing, or the output folder is in the way

The CLI prints ``cxrvqa: error: <message>`` and exits with ``exit_code``; it never
looks at class names. A ``DataError`` message is one line naming the file, the
record or line, and what was expected. Program diagnostics and their codes live in
``cxrvqa.lang.diagnostics``; this module imports nothing of cxrvqa, so every layer
may raise these errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

__all__ = [
    "EXIT_DATA",
    "EXIT_DIFFERENCE",
    "EXIT_OK",
    "EXIT_USAGE",
    "CxrvqaError",
    "DataError",
    "DownloadError",
    "EvaluationError",
    "ExportError",
    "ProgramError",
    "ProgramHeaderError",
    "ProgramNameError",
    "ProgramSyntaxError",
    "ProgramTypeError",
    "UsageError",
    "printable",
]

EXIT_OK = 0
EXIT_DIFFERENCE = 1  # `check` found errors, `verify` found differences
EXIT_USAGE = 2
EXIT_DATA = 3


def printable(text: str) -> str:
    """``text`` with control characters (a newline or tab in a file name) written as escapes,
    so that a message or a listed name stays one line."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


class CxrvqaError(Exception):
    """Base of every error cxrvqa raises on purpose."""

    exit_code: int = EXIT_DATA


class UsageError(CxrvqaError):
    """The command line cannot be run as given (argparse's own errors exit 2 too)."""

    exit_code = EXIT_USAGE


class EvaluationError(CxrvqaError):
    """A checked program cannot be answered on an image's facts (e.g. a missing box)."""


class DataError(CxrvqaError):
    """A source, question or built file is missing, unreadable or inconsistent."""


class DownloadError(CxrvqaError):
    """A download cannot go on: credentials, access, a missing file, the network or a checksum."""


class ExportError(CxrvqaError):
    """The export extra is not installed, or the output folder is in the way."""


class _Rendered(Protocol):
    def render(self) -> str: ...


class ProgramError(CxrvqaError):
    """A program file is wrong; ``diagnostics`` lists every problem found."""

    exit_code = EXIT_DIFFERENCE

    def __init__(self, diagnostics: Sequence[_Rendered]) -> None:
        # cxrvqa.lang.Diagnostic objects, which readers use as such (code, span, hint): typed
        # Any because this foundation module may not import the language that defines them.
        self.diagnostics: tuple[Any, ...] = tuple(diagnostics)
        super().__init__("\n".join(d.render() for d in self.diagnostics))


class ProgramSyntaxError(ProgramError):
    """E1xx: the text does not parse (function names are keywords, so unknown ones are here)."""


class ProgramNameError(ProgramError):
    """E2xx: an unknown or duplicated parameter or name, an unknown vocabulary term."""


class ProgramTypeError(ProgramError):
    """E3xx: operand kinds, arity or the result kind are wrong."""


class ProgramHeaderError(ProgramError):
    """E4xx: template slots, parameters and the program name disagree."""
