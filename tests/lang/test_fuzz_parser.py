"""Fuzzing the parser: any text parses or raises ProgramSyntaxError positioned inside the text."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lark.lexer import PatternStr

import cxrvqa
from cxrvqa import ImageFacts, ProgramError, ProgramSyntaxError, check, parse
from cxrvqa.lang.parser import MAX_DEPTH, build_parser
from cxrvqa.lang.resources import programs_dir

PROGRAM_TEXTS = [p.read_text(encoding="utf-8") for p in sorted(programs_dir().glob("*.cxr"))
                 if not p.name.startswith("_")]
TOKENS = st.sampled_from(sorted(
    {t.pattern.value for t in build_parser().terminals if isinstance(t.pattern, PatternStr)}
    | {"here", "ABNORMAL", "$object", "$attribute", "0", "12", '"left lung"', '"pneumonia"',
       "// note\n"}))
# Characters the language uses, so that random text often gets past the first token.
ALPHABET = st.sampled_from(list('abcdefglmnoprstuwxy_$"{}[](),.|&-+*/<>=! \n\t:0123')) | \
    st.characters()


def parses_or_fails_cleanly(text: str) -> None:
    """The only allowed failure is our own syntax error, pointing into the text."""
    try:
        program = parse(text)
    except ProgramSyntaxError as err:
        [diagnostic] = err.diagnostics
        span = diagnostic.span
        assert span is not None and 0 <= span.start <= len(text)
        lines = text.split("\n")
        assert 1 <= span.line <= len(lines)
        assert 1 <= span.column <= len(lines[span.line - 1]) + 1
        assert diagnostic.render().startswith(f"<string>:{span.line}:{span.column}: error: ")
    else:
        try:
            check(program)
        except ProgramError:  # only a broken bundled prelude could raise here
            raise AssertionError("checking a parsed program must not raise") from None


@given(st.text())
def test_arbitrary_text(text: str) -> None:
    parses_or_fails_cleanly(text)


@given(st.text(ALPHABET, max_size=80))
def test_text_over_the_language_alphabet(text: str) -> None:
    parses_or_fails_cleanly(text)


@given(st.sampled_from(PROGRAM_TEXTS), st.integers(0, 2000), st.integers(0, 12),
       st.text(ALPHABET, max_size=6))
def test_edited_bundled_programs(text: str, at: int, cut: int, insert: str) -> None:
    at = at % (len(text) + 1)
    parses_or_fails_cleanly(text[:at] + insert + text[at + cut:])


@given(st.lists(TOKENS, max_size=40))
def test_token_soup(tokens: list[str]) -> None:
    # Sequences of real tokens reach deep parser states that random characters rarely do.
    # (hypothesis.extra.lark.from_lark is far too slow on this recursive grammar.)
    parses_or_fails_cleanly(" ".join(tokens))


@given(st.lists(TOKENS, max_size=30))
def test_token_soup_after_a_valid_header(tokens: list[str]) -> None:
    parses_or_fails_cleanly('program p\ntemplate "t"\nreturns bool\n' + " ".join(tokens))


@pytest.mark.parametrize("depth", [50, 95, 101, 3000])
@pytest.mark.parametrize("nest", [
    lambda k: "not " * k + "exists(findings)",
    lambda k: " | ".join(["objects(findings)"] * k) + " = objects(findings)",
    lambda k: " - ".join(["1"] * k) + " > 0",
    lambda k: "(" * k + "exists(findings)" + ")" * k,
    lambda k: "exists(" * k + "findings" + ")" * k,
], ids=["not", "union", "minus", "parentheses", "calls"])
def test_deep_nesting_evaluates_or_is_refused(depth: int, nest: Callable[[int], str]) -> None:
    text = 'program p\ntemplate "t"\nreturns bool\n\n' + nest(depth)
    try:
        program = parse(text)
    except ProgramSyntaxError as err:
        assert [d.code for d in err.diagnostics] == ["E107"]
        assert depth > MAX_DEPTH
    else:
        check(program)
        try:
            cxrvqa.evaluate(program, ImageFacts([]))
        except ProgramError:  # kind errors (e.g. 'union' compares sets with '='): fine
            pass
