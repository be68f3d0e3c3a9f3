"""cxrvqa: rebuild MIMIC-CXR-VQA, answering each question with a declarative template program.

The public API is the names in ``__all__``::

    import cxrvqa
    programs = cxrvqa.load_programs()              # the 48 bundled template programs
    facts = cxrvqa.ImageFacts([("left lung", "pneumonia", "disease")], "AP", "F", {})
    cxrvqa.answer(programs, record, facts)         # record: template_program + template_arguments

Everything else is importable but may change.
"""

from __future__ import annotations

from cxrvqa import _compat
from cxrvqa.errors import (
                           CxrvqaError,
                           DataError,
                           EvaluationError,
                           ProgramError,
                           ProgramHeaderError,
                           ProgramNameError,
                           ProgramSyntaxError,
                           ProgramTypeError,
)
from cxrvqa.facts import ImageFacts
from cxrvqa.lang.check import check
from cxrvqa.lang.diagnostics import Diagnostic
from cxrvqa.lang.kinds import Vocabulary
from cxrvqa.lang.nodes import Program
from cxrvqa.lang.parser import parse
from cxrvqa.lang.source import Span
from cxrvqa.programs import answer, evaluate, load_program, load_programs

__version__ = "0.1.0"

_compat.install()  # the 0.1 module paths, deprecated (see cxrvqa/_compat.py)

__all__ = [
    "CxrvqaError",
    "DataError",
    "Diagnostic",
    "EvaluationError",
    "ImageFacts",
    "Program",
    "ProgramError",
    "ProgramHeaderError",
    "ProgramNameError",
    "ProgramSyntaxError",
    "ProgramTypeError",
    "Span",
    "Vocabulary",
    "__version__",
    "answer",
    "check",
    "evaluate",
    "load_program",
    "load_programs",
    "parse",
]
