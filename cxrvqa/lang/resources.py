"""Locate the bundled grammar and programs, installed or in a source checkout.

A built wheel carries ``grammar/`` and ``programs/`` as ``cxrvqa/_data/...``
(pyproject.toml force-includes them); a source or editable checkout has them
next to the package. The packaged copy wins when both exist.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from cxrvqa.errors import CxrvqaError

__all__ = ["data_dir", "grammar_path", "prelude_path", "programs_dir"]

PRELUDE_NAME = "_prelude.cxr"


def data_dir(name: str) -> Path:
    """The bundled folder ``name`` (``grammar`` or ``programs``).

    Raises:
        CxrvqaError: neither the packaged nor the checkout copy exists.
    """
    candidates = (Path(str(files("cxrvqa"))) / "_data" / name,
                  Path(__file__).resolve().parents[2] / name)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise CxrvqaError(f"cannot find the bundled '{name}' folder (looked in "
                      f"{', '.join(str(c) for c in candidates)}); reinstall cxrvqa")


def grammar_path() -> Path:
    """The grammar file, ``grammar/cxrvqa.lark``."""
    return data_dir("grammar") / "cxrvqa.lark"


def programs_dir() -> Path:
    """The folder of the 48 bundled template programs."""
    return data_dir("programs")


def prelude_path() -> Path:
    """The prelude every program sees, ``programs/_prelude.cxr``."""
    return programs_dir() / PRELUDE_NAME
