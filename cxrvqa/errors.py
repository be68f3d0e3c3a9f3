"""Exceptions and diagnostics shared by every stage.

    CxrvqaError
      ProgramError            a program file is wrong (carries diagnostics)
        ProgramSyntaxError    E1xx  the text does not parse
        ProgramNameError      E2xx  unknown parameter, constant or vocabulary term
        ProgramTypeError      E3xx  operand kinds, arity, result type
        ProgramHeaderError    E4xx  template slots and parameters disagree
      EvaluationError         E5xx  a program cannot be answered on these facts
      DataError               E6xx  a source or question file is wrong

A ``DataError`` message is one line naming the file, the record or line, and
what was expected; the CLI prints it as is and exits non-zero.
"""

from __future__ import annotations

__all__ = ["CxrvqaError", "DataError", "EvaluationError"]


class CxrvqaError(Exception):
    """Base of every error cxrvqa raises on purpose."""


class EvaluationError(CxrvqaError):
    """A checked program cannot be answered on an image's facts (e.g. a missing box)."""


class DataError(CxrvqaError):
    """A source or question file is missing, unreadable or inconsistent."""
