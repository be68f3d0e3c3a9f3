"""cxrvqa: rebuild MIMIC-CXR-VQA, answering each question with a declarative template program.

The public API is the names in ``__all__``::

    import cxrvqa
    programs = cxrvqa.load_programs()              # the 48 bundled template programs
    facts = cxrvqa.ImageFacts([("left lung", "pneumonia", "disease")], "AP", "F", {})
    cxrvqa.answer(programs, record, facts)         # record: template_program + template_arguments

Everything else is importable but may change.
"""

from __future__ import annotations

from cxrvqa.check import check
from cxrvqa.errors import (CxrvqaError, DataError, Diagnostic, EvaluationError, ProgramError,
                           ProgramHeaderError, ProgramNameError, ProgramSyntaxError,
                           ProgramTypeError)
from cxrvqa.facts import ImageFacts
from cxrvqa.kinds import Vocabulary
from cxrvqa.nodes import Program
from cxrvqa.parser import parse
from cxrvqa.programs import answer, load_program, load_programs
from cxrvqa.source import Span

__version__ = "0.1.0"

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
    "load_program",
    "load_programs",
    "parse",
]
