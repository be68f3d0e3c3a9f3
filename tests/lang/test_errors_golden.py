"""Every diagnostic code has a snapshot of its exact rendered message in tests/golden/errors.

``<name>.cxr`` is a program with exactly one problem, whose code is the file
name's prefix (``e301_...`` -> E301); ``<name>.err`` is its rendering. Run
``pytest tests/test_errors_golden.py --update-goldens`` to rewrite the
snapshots after a deliberate change, then review the diff.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cxrvqa import Diagnostic, ProgramError, check, parse
from cxrvqa.lang.diagnostics import ERROR_CODES

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "errors"
FILES = sorted(GOLDEN.glob("*.cxr"))
HEADER = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+):(?P<column>\d+): error: (?P<message>.*)$")


def diagnose(path: Path) -> list[Diagnostic]:
    try:
        program = parse(path.read_text(encoding="utf-8"), path.name)
    except ProgramError as err:
        return list(err.diagnostics)
    return check(program)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_rendered_diagnostic_matches_snapshot(path: Path, update_goldens: bool) -> None:
    diagnostics = diagnose(path)
    rendered = "".join(d.render() + "\n" for d in diagnostics)
    snapshot = path.with_suffix(".err")
    if update_goldens:
        snapshot.write_text(rendered, encoding="utf-8")
    assert rendered == snapshot.read_text(encoding="utf-8")
    assert [d.code for d in diagnostics] == [path.stem[:4].upper()]
    header = HEADER.match(rendered.splitlines()[0])
    assert header is not None
    span = diagnostics[0].span
    assert span is not None
    assert (header["path"], int(header["line"]), int(header["column"]), header["message"]) == \
        (path.name, span.line, span.column, diagnostics[0].message)


def test_every_code_has_a_snapshot() -> None:
    assert sorted({p.stem[:4].upper() for p in FILES}) == sorted(ERROR_CODES)
