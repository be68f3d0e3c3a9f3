"""cxrvqa: rebuild MIMIC-CXR-VQA, answering each question with a declarative template program.

The public API is the names in ``__all__``::

    import cxrvqa
    programs = cxrvqa.load_programs()              # the 48 bundled template programs
    facts = cxrvqa.ImageFacts([("left lung", "pneumonia", "disease")], "AP", "F", {})
    cxrvqa.answer(programs, record, facts)         # record: template_program + template_arguments

Everything else is importable but may change.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from cxrvqa.facts import ImageFacts
    from cxrvqa.lang.check import check
    from cxrvqa.lang.diagnostics import Diagnostic
    from cxrvqa.lang.kinds import Vocabulary
    from cxrvqa.lang.nodes import Program
    from cxrvqa.lang.parser import parse
    from cxrvqa.lang.source import Span
    from cxrvqa.programs import answer, evaluate, load_program, load_programs

# Imported on first use (PEP 562): `import cxrvqa.cli` or a build must not pay for Lark,
# the checker and the compiler before it needs them.
_LAZY = {"ImageFacts": "cxrvqa.facts", "check": "cxrvqa.lang.check",
         "Diagnostic": "cxrvqa.lang.diagnostics", "Vocabulary": "cxrvqa.lang.kinds",
         "Program": "cxrvqa.lang.nodes", "parse": "cxrvqa.lang.parser",
         "Span": "cxrvqa.lang.source", "answer": "cxrvqa.programs", "evaluate": "cxrvqa.programs",
         "load_program": "cxrvqa.programs", "load_programs": "cxrvqa.programs"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cxrvqa' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


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
