"""Mistakes authors of new templates make: each gets a located message, never a silent answer."""

from __future__ import annotations

import pytest

from cxrvqa import ProgramSyntaxError, parse

HEADER = 'program p\ntemplate "Is the patient ${gender}?"\nparam gender: gender\nreturns bool\n\n'


@pytest.mark.parametrize(("body", "what", "column"), [
    # Declared, the keyword lexes as a name; used, it is the keyword: the image's gender.
    ("def is_g(gender: gender) = gender = gender\nis_g($gender)", "a definition's parameter", 10),
    ("let findings = findings[attribute = attribute \"pneumonia\"]\nexists(findings)",
     "a let", 5),
    # 'count(' calls the built-in, never the definition.
    ("def count(g: gender) = g = gender\ncount($gender)", "a definition", 5),
])
def test_a_keyword_cannot_name_a_let_a_def_or_its_param(body: str, what: str, column: int) -> None:
    with pytest.raises(ProgramSyntaxError) as caught:
        parse(HEADER + body, "p.cxr")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "E101"
    assert f"is a keyword and cannot name {what}" in diagnostic.message
    assert diagnostic.span is not None
    assert (diagnostic.span.line, diagnostic.span.column) == (6, column)
    assert diagnostic.render().splitlines()[2].strip() == "^"
