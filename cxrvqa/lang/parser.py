"""Parse program text into AST nodes with Lark (LALR) and report syntax errors.

The grammar lives in ``grammar/cxrvqa.lark``. The Lark parser is built once
per process; ``_Builder`` only turns parse trees into nodes (it never
evaluates). Every failure leaves as a ``ProgramSyntaxError`` carrying one
diagnostic: the parser stops at the first syntax error.
"""

from __future__ import annotations

import difflib
import functools
import math
import os
import re
from collections.abc import Callable
from typing import NamedTuple, TypeVar, cast

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)
from lark.lexer import PatternStr
from lark.tree import Meta

from cxrvqa.errors import CxrvqaError, ProgramSyntaxError
from cxrvqa.lang import nodes as n
from cxrvqa.lang.diagnostics import Diagnostic
from cxrvqa.lang.resources import grammar_path
from cxrvqa.lang.source import Source, Span

__all__ = ["build_parser", "item_lines", "parse", "parse_prelude"]

_T = TypeVar("_T")

# Regex terminals as a message names them (keywords and punctuation are quoted instead).
_TERMINAL_WORDS = {"NAME": "a name", "CONST_NAME": "a constant", "PARAM": "a parameter",
                   "INT": "a number", "DECIMAL": "a number", "STRING": "a string",
                   "CALL_OPEN": "a call", "$END": "end of input"}
_ESCAPE = re.compile(r'\\(["\\])')
# A keyword directly followed by the rest of a word (the unexpected token's first letter).
_SPLIT_WORD = re.compile(r"(?<![\w$])([a-z_]+)\w$")
_WORD = re.compile(r"\w+")
_TRAILING_NAME = re.compile(r"(?<![\w$])([a-z][a-z0-9_]*)\s*$")
_OTHER_SET_OPERATOR = {"VBAR": "AMPERSAND", "AMPERSAND": "VBAR"}
_MAX_HINT_CHOICES = 3
MAX_DEPTH = 100


def build_parser(strict: bool = False, cache: str | bool = False) -> Lark:
    """Build the LALR parser from grammar/cxrvqa.lark (``strict`` also rejects terminal collisions).

    ``cache`` is Lark's: a file path keeps the built tables there, keyed by the grammar,
    the options and Lark's version.
    """
    return Lark(grammar_path().read_text(encoding="utf-8"), parser="lalr",
                start=["program", "prelude"], propagate_positions=True,
                maybe_placeholders=True, strict=strict, cache=cache)


def _cache_file() -> str | bool:
    """This user's parser-table cache (building the tables costs ~0.5 s, loading them ~20 ms).

    A private folder, not the shared temp dir, because Lark unpickles what it finds there.
    ``CXRVQA_NO_CACHE=1`` or an unwritable home turns the cache off.
    """
    if os.environ.get("CXRVQA_NO_CACHE"):
        return False
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "cxrvqa")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
    except OSError:
        return False
    return os.path.join(folder, "parser.lark-cache")


@functools.cache
def _parser() -> Lark:
    return build_parser(cache=_cache_file())


def parse(text: str, path: str | os.PathLike[str] | None = None) -> n.Program:
    """Parse one program file (syntax only; see ``cxrvqa.check``).

    Args:
        text: the program text.
        path: where it was read from; diagnostics name it and the checker compares
            the program name with its stem.

    Raises:
        ProgramSyntaxError: the text does not parse.

    Example:
        >>> parse('program p template "t" returns bool exists(findings)').returns
        'bool'
    """
    return _build(text, path, "program", n.Program)


def parse_prelude(text: str, path: str | os.PathLike[str] | None = None) -> n.Prelude:
    """Parse a prelude file (``const NAME = expr`` lines)."""
    return _build(text, path, "prelude", n.Prelude)


def item_lines(text: str, start: str = "program") -> list[tuple[int, int]]:
    """(first line, last line) of each top-level item of a file that parses, in order.

    Items: a program's name line, templates, type lines, params, returns, definitions,
    lets and body; a prelude's definitions. ``cxrvqa fmt`` places comments with them.
    """
    tree = _parser().parse(text, start=start)
    lines = []
    for child in tree.children:
        if isinstance(child, Token):
            lines.append((child.line or 0, child.end_line or child.line or 0))
        elif isinstance(child, Tree) and not child.meta.empty:
            lines.append((child.meta.line, child.meta.end_line))
    return lines


def _build(text: str, path: str | os.PathLike[str] | None, start: str, cls: type[_T]) -> _T:
    if not isinstance(text, str):  # Lark's own errors for None, bytes or 5 name its lexer state
        raise TypeError(f"expected the program text as str, got {type(text).__name__}")
    # A file read with encoding="utf-8" keeps an editor's byte order mark; it is not line 1's text
    # (files cxrvqa reads itself are decoded with "utf-8-sig").
    text = text.removeprefix("\ufeff")
    source = Source(text, None if path is None else os.fspath(path))
    try:
        tree = _parser().parse(text, start=start)
    except UnexpectedInput as err:
        diagnostic = _diagnose(err, source)
        if start == "program":  # the lexer reads a misplaced header line as the body's words
            diagnostic = _item_order_problem(source, diagnostic) or diagnostic
        raise ProgramSyntaxError([diagnostic]) from None
    _check_depth(tree, source)
    try:
        node = _Builder(source).transform(tree)
    except VisitError as err:
        if isinstance(err.orig_exc, CxrvqaError):
            raise err.orig_exc from None
        raise
    assert isinstance(node, cls)
    return node


# --- syntax errors ---

def _check_depth(tree: Tree[Token], source: Source) -> None:
    """Refuse trees deeper than MAX_DEPTH (walked without recursion).

    Building, checking and compiling recurse once or twice per level, and the
    generated Python nests one parenthesis per level (Python allows 200).
    """
    # Each entry carries the hint of the innermost operator chain around it, if any.
    stack: list[tuple[Tree[Token], int, str | None]] = [(tree, 1, None)]
    while stack:
        node, depth, hint = stack.pop()
        hint = _chain_hint(node) or hint
        if depth > MAX_DEPTH:
            raise ProgramSyntaxError([Diagnostic(
                "E107", f"expression nested more than {MAX_DEPTH} levels deep",
                source.point(node.meta.start_pos), source, hint)])
        stack.extend((child, depth + (child.data != "arguments"), hint)  # a call is one level
                     for child in node.children if isinstance(child, Tree))


_CHAINS = {"or_": "or", "and_": "and", "add": "+", "subtract": "-", "multiply": "*",
           "divide": "/", "union": "|", "intersection": "&"}


def _chain_hint(node: Tree[Token]) -> str | None:
    """Why a flat 'a or b or c ...' is deep: each operator of a long chain nests one level."""
    operator = _CHAINS.get(str(node.data))
    if operator is None:  # most nodes: no spine to walk (this runs for every node parsed)
        return None
    first: Tree[Token] | Token | None
    length, first = 0, node
    while isinstance(first, Tree) and first.data == node.data and length <= MAX_DEPTH // 2:
        length, first = length + 1, first.children[0] if first.children else None
    if length <= MAX_DEPTH // 2:
        return None
    return (f"each '{operator}' of a chain is one level: group its terms, e.g. "
            f"'(a {operator} b) {operator} (c {operator} d)', or name parts with let")


def _diagnose(err: UnexpectedInput, source: Source) -> Diagnostic:
    if isinstance(err, UnexpectedCharacters):
        position = err.pos_in_stream or 0
        span = source.point(position)
        char = source.text[position]
        if char == '"':
            return Diagnostic("E104", "unterminated string", span, source)
        return Diagnostic("E101", f"unexpected character {char!r}", span, source)
    assert isinstance(err, UnexpectedToken), err
    token, expected = err.token, set(err.expected)
    hint = _expected_hint(expected)
    if token.type == "$END":
        return Diagnostic("E102", "unexpected end of input", source.end_of_input(), source, hint)
    span = source.point(token.start_pos)
    split = _SPLIT_WORD.search(source.text, 0, token.start_pos + 1)
    if split and split.end(1) == token.start_pos and split.group(1) in _keywords():
        # 'objects' where only 'object' fits: the lexer took the keyword and left 's'.
        whole = _WORD.match(source.text, split.start(1))
        assert whole is not None
        return Diagnostic("E101", f"unexpected {whole.group()!r}", source.point(split.start(1)),
                          source, f"did you mean {split.group(1)!r}?")
    if _OTHER_SET_OPERATOR.get(token.type) in expected:  # 'a | b & c': '|' could go on
        return Diagnostic("E103", "'|' and '&' cannot be mixed without parentheses", span, source,
                          "group one side, e.g. 'a | (b & c)'")
    if token.type == "STRING":  # 'attribute = "pneumonia"': a term written without its kind
        return Diagnostic("E101", f"unexpected {token.value!r}", span, source,
                          _bare_string_hint(source.text, token))
    if expected and expected <= _kind_terminals():  # 'param finding: finding'
        return Diagnostic("E101", f"unexpected {token.value!r}", span, source,
                          "kinds: " + ", ".join(_KINDS))
    before = _TRAILING_NAME.search(source.text, 0, token.start_pos)
    if token.type == "LBRACE" and before and before.group(1) not in _keywords():
        # 'viewposes {"AP"}', 'object {"left lung"}' misspelt: only three kinds have term sets.
        return Diagnostic("E101", f"unexpected '{before.group(1)} {{'",
                          source.point(before.start(1)), source,
                          "term sets are objects {…}, attributes {…} and categories {…}; "
                          "one view position or gender is {viewpos \"AP\"}, {gender \"F\"}")
    if token.type == "LPAR" and before and before.group(1) not in _keywords():
        name = before.group(1)
        hint = "functions: " + ", ".join(sorted(n.FUNCTIONS))
        if before.end(1) < token.start_pos:  # 'f (x)': only 'f(' (one token) calls a definition
            hint += f"; a definition is called with no blank before '(': '{name}(...)'"
        return Diagnostic("E106", f"unknown function '{name}'", source.point(before.start(1)),
                          source, hint)
    keywords = [t.pattern.value for t in _parser().terminals
                if t.name in expected and isinstance(t.pattern, PatternStr)]
    close = difflib.get_close_matches(str(token.value), keywords, n=1) if keywords else []
    if close:  # 'param object: object ignore' -> 'ignored'
        hint = f"did you mean {close[0]!r}?"
    return Diagnostic("E101", f"unexpected {token.value!r}", span, source, hint)


_KINDS = ("object", "attribute", "category", "viewpos", "gender")
# The order of a program's lines (grammar rule 'program'); const and def may mix.
_ITEM_RANK = {"program": 0, "template": 1, "content_type": 2, "semantic_type": 3, "param": 4,
              "returns": 5, "const": 6, "def": 6, "let": 7}
_ITEM_LINE = re.compile(r"^[ \t]*(" + "|".join(_ITEM_RANK) + r")\b[ \t]*([a-z]*)", re.MULTILINE)
_RESULT_KINDS = ("bool", "list", "number")
_ORDER_HINT = ("a program's lines go in this order: program, template, content_type, "
               "semantic_type, param, returns; then const and def, let, and the body")


def _item_order_problem(source: Source, found: Diagnostic) -> Diagnostic | None:
    """A clearer reason for a syntax error at or after a misplaced item line, a 'returns' of
    no result kind or a missing 'returns' line ('returns boolean' lexes as 'bool' and a body
    'ean', and the error then points at the real body)."""
    limit = found.span.start if found.span is not None else len(source.text)
    items = list(_ITEM_LINE.finditer(source.text))
    highest = ("", -1)
    for match in (m for m in items if m.start(1) <= limit):
        word, rank = match.group(1), _ITEM_RANK[match.group(1)]
        if rank < highest[1]:
            return Diagnostic("E101", f"'{word}' line after a '{highest[0]}' line",
                              source.point(match.start(1)), source, _ORDER_HINT)
        highest = max(highest, (word, rank), key=lambda item: item[1])
        if word == "returns" and match.group(2) not in _RESULT_KINDS:
            return Diagnostic("E101", f"'returns {match.group(2)}': not a result kind",
                              source.point(match.start(2)), source,
                              "returns bool, returns list or returns number")
    line_start = source.text.rfind("\n", 0, limit) + 1
    on_item_line = any(m.start() == line_start for m in items)
    if not on_item_line and not any(m.group(1) == "returns" for m in items):
        return Diagnostic("E101", "no 'returns' line before the body", found.span, source,
                          "add 'returns bool', 'returns list' or 'returns number' after the "
                          "params")
    return None
_FIELD_BEFORE = re.compile(r"\b(object|attribute|category)\s*(=|in)\s*$")


@functools.cache
def _kind_terminals() -> frozenset[str]:
    """The terminal names of the kind keywords (where a param or def param's kind goes)."""
    return frozenset(t.name for t in _parser().terminals
                     if isinstance(t.pattern, PatternStr) and t.pattern.value in _KINDS)


def _bare_string_hint(text: str, token: Token) -> str:
    field = _FIELD_BEFORE.search(text, 0, token.start_pos or 0)
    if field and field.group(2) == "=":
        return f"a term names its kind: write '{field.group(1)} {token.value}'"
    if field:
        plural = {"object": "objects", "attribute": "attributes", "category": "categories"}
        return f"a set of terms names its kind: write '{plural[field.group(1)]} {{{token.value}}}'"
    return f"a term names its kind, e.g. 'object {token.value}'"


@functools.cache
def _keywords() -> frozenset[str]:
    return frozenset(t.pattern.value for t in _parser().terminals
                     if isinstance(t.pattern, PatternStr))


def _expected_hint(expected: set[str]) -> str | None:
    if len(expected) > _MAX_HINT_CHOICES:
        return None  # LALR merges states: long lists are noise
    patterns = {t.name: t.pattern for t in _parser().terminals}
    words = sorted(f"'{patterns[name].value}'" if isinstance(patterns.get(name), PatternStr)
                   else _TERMINAL_WORDS.get(name, name) for name in expected)
    return "expected " + " or ".join(words)


# --- parse tree -> nodes ---

def _unquote(token: Token) -> str:
    return _ESCAPE.sub(r"\1", token[1:-1])


@v_args(inline=True, meta=True)
class _Builder(Transformer[Token, object]):
    """Turn a parse tree into nodes, attaching spans; one method per rule or alias."""

    def __init__(self, source: Source) -> None:
        super().__init__()
        self._source = source

    def _span(self, meta: Meta) -> Span | None:
        if meta.empty:
            return None
        return Span(meta.start_pos, meta.end_pos, meta.line, meta.column, meta.end_line,
                    meta.end_column)

    # header

    def program(self, meta: Meta, name: Token, *items: object) -> n.Program:
        *header, body = items
        returns = next(item for item in header if isinstance(item, _Returns))
        types = {item.header: item.word for item in header if isinstance(item, _TypeLine)}
        return n.Program(str(name), _only(header, n.Template), _only(header, n.Param),
                         returns.kind, _only(header, n.Let), cast(n.Expr, body),
                         content_type=types.get("content_type"),
                         semantic_type=types.get("semantic_type"),
                         definitions=_only(header, (n.Const, n.Def)), span=self._span(meta),
                         source=self._source)

    def template(self, meta: Meta, text: Token) -> n.Template:
        return n.Template(_unquote(text), span=self._span(meta))

    def content_type(self, meta: Meta, word: str) -> _TypeLine:
        return _TypeLine("content_type", word, self._span(meta))

    def semantic_type(self, meta: Meta, word: str) -> _TypeLine:
        return _TypeLine("semantic_type", word, self._span(meta))

    def param(self, meta: Meta, name: Token, kind: n.ParamKind, ignored: Token | None
              ) -> n.Param:
        return n.Param(str(name), kind, ignored is not None, span=self._span(meta))

    def returns(self, meta: Meta, kind: n.ResultKind) -> _Returns:
        return _Returns(kind)

    def let(self, meta: Meta, name: Token, value: n.Expr) -> n.Let:
        return n.Let(self._own_name(name, "a let"), value, span=self._span(meta))

    def prelude(self, meta: Meta, *constants: n.Definition) -> n.Prelude:
        return n.Prelude(constants, span=self._span(meta), source=self._source)

    def const(self, meta: Meta, name: Token, value: n.Expr) -> n.Const:
        return n.Const(str(name), value, span=self._span(meta))

    def define(self, meta: Meta, opening: Token, params: tuple[n.DefParam, ...] | None,
             value: n.Expr) -> n.Def:
        return n.Def(self._own_name(opening, "a definition"), params or (), value,
                     span=self._span(meta))

    def def_params(self, meta: Meta, *params: n.DefParam) -> tuple[n.DefParam, ...]:
        return params

    def def_param(self, meta: Meta, name: Token, kind: n.ParamKind) -> n.DefParam:
        return n.DefParam(self._own_name(name, "a definition's parameter"), kind,
                          span=self._span(meta))

    def _own_name(self, token: Token, what: str) -> str:
        """The name an author gives (a let, a def or a def param); a keyword is refused.

        Where a name is declared the lexer takes a keyword as a name, but where it is used
        it stays the keyword: 'def is_g(gender: gender) = gender = $g' would read the
        image's gender, silently.
        """
        name = str(token).removesuffix("(")
        if name in _keywords():
            raise ProgramSyntaxError([Diagnostic(
                "E101", f"'{name}' is a keyword and cannot name {what}",
                self._source.point(token.start_pos or 0), self._source,
                f"choose another name, e.g. '{name[0]}' or 'my_{name}'")])
        return name

    # keyword rules: their only child is the keyword token

    def _keyword(self, meta: Meta, token: Token) -> str:
        return str(token)

    kind = result_kind = comparator = field = condition_op = plural_kind = callee = _keyword
    type_word = _keyword

    # operators

    def _binary(op: n.BinaryOp) -> Callable[..., n.Binary]:  # type: ignore[misc]  # class-body factory
        def build(self: _Builder, meta: Meta, left: n.Expr, right: n.Expr) -> n.Binary:
            return n.Binary(op, left, right, span=self._span(meta))
        return build

    or_, and_, add, subtract = _binary("or"), _binary("and"), _binary("+"), _binary("-")
    multiply, divide, member = _binary("*"), _binary("/"), _binary("in")
    union, intersection = _binary("|"), _binary("&")

    def compare(self, meta: Meta, left: n.Expr, op: n.BinaryOp, right: n.Expr) -> n.Binary:
        return n.Binary(op, left, right, span=self._span(meta))

    def not_(self, meta: Meta, operand: n.Expr) -> n.Not:
        return n.Not(operand, span=self._span(meta))

    def filter(self, meta: Meta, source: n.Expr, *conditions: n.Condition) -> n.Filter:
        return n.Filter(source, conditions, span=self._span(meta))

    def condition(self, meta: Meta, field: n.Field, op: n.ConditionOp, value: n.Expr
                  ) -> n.Condition:
        return n.Condition(field, op, value, span=self._span(meta))

    def call(self, meta: Meta, function: str, args: tuple[n.Expr, ...] | None
             ) -> n.Call | n.Apply:
        if isinstance(function, Token) and function.type == "CALL_OPEN":
            function = function[:-1]  # 'name(' written as one token
            if function not in n.FUNCTIONS:
                return n.Apply(function, args or (), span=self._span(meta))
        return n.Call(cast(n.Function, str(function)), args or (), span=self._span(meta))

    def arguments(self, meta: Meta, *args: n.Expr) -> tuple[n.Expr, ...]:
        return args

    # leaves

    def fact(self, meta: Meta, token: Token) -> n.Fact:
        return n.Fact(cast(n.FactName, str(token)), span=self._span(meta))

    def number(self, meta: Meta, token: Token) -> n.Number:
        if token.type == "DECIMAL" and math.isfinite(float(token)):
            return n.Number(float(token), span=self._span(meta))
        try:
            value = int(token)  # a decimal too large for a float fails here too
        except ValueError:  # Python refuses to convert integers of thousands of digits
            raise ProgramSyntaxError([Diagnostic("E105", "number literal too large",
                                                 self._span(meta), self._source)]) from None
        return n.Number(value, span=self._span(meta))

    def param_ref(self, meta: Meta, token: Token) -> n.ParamRef:
        return n.ParamRef(token[1:], span=self._span(meta))

    def name(self, meta: Meta, token: Token) -> n.Name:
        return n.Name(str(token), span=self._span(meta))

    def term(self, meta: Meta, kind: n.ParamKind, value: Token) -> n.Term:
        return n.Term(kind, _unquote(value), span=self._span(meta))

    def term_set(self, meta: Meta, kind: n.PluralKind, values: tuple[str, ...] | None
                 ) -> n.TermSet:
        return n.TermSet(kind, values or (), span=self._span(meta))

    def strings(self, meta: Meta, *values: Token) -> tuple[str, ...]:
        return tuple(_unquote(value) for value in values)

    def set_of(self, meta: Meta, *elements: n.Expr) -> n.SetOf:
        return n.SetOf(elements, span=self._span(meta))


def _only(items: list[object], cls: type[_T] | tuple[type, ...]) -> tuple[_T, ...]:
    return tuple(item for item in items if isinstance(item, cls))  # type: ignore[misc]


class _Returns(NamedTuple):
    kind: n.ResultKind


class _TypeLine(NamedTuple):
    header: str
    word: str
    span: Span | None
