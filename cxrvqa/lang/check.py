"""Check programs statically: names, vocabulary, kinds, and header against body.

The checker walks the AST with one ``visit_<Node>`` method per expression
node, types each node with ``kinds.SIGNATURES`` and collects every problem as
a ``Diagnostic`` instead of stopping at the first. A node whose kind cannot
be known (because of an error below it) has kind None and raises no further
errors, so one mistake gives one message.
"""

from __future__ import annotations

import difflib
import functools
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TextIO, get_args

from cxrvqa.errors import DataError, ProgramError
from cxrvqa.lang import nodes as n
from cxrvqa.lang.diagnostics import Diagnostic, program_error
from cxrvqa.lang.kinds import (
    ELEMENT_OF,
    FACT_KINDS,
    FIELD_KINDS,
    PARAM_KINDS,
    PLURAL_KINDS,
    RESULT_KINDS,
    SCALAR_KINDS,
    SET_OF,
    SIGNATURES,
    Kind,
    Vocabulary,
)
from cxrvqa.lang.parser import parse, parse_prelude
from cxrvqa.lang.resources import PRELUDE_NAME, prelude_path
from cxrvqa.lang.source import Source, Span
from cxrvqa.lang.templates import expected_param_names, template_slots

__all__ = ["CONTENT_TYPES", "SEMANTIC_TYPES", "Analysis", "Checker", "Environment", "analyze", "check",
           "check_paths", "check_prelude", "environment_for", "facts_read", "folder_prelude",
           "prelude_environment", "program_files", "read_program_text", "unreadable_program"]

_LISTED_TERMS = 5  # a kind with at most this many terms lists them when one is wrong
_BEFORE_OPERATOR = re.compile(r"(?:\s|\)|//[^\n]*)*")

CONTENT_TYPES = ("anatomy", "attribute", "presence", "abnormality", "plane", "gender", "size")
"""The released content types. Not a closed list: an author's new kind of question may need
a new word (e.g. ``count``), so the checker accepts any word here."""

SEMANTIC_TYPES = ("verify", "query", "choose")
"""The semantic types; a closed list, because ``generate`` draws "choose" questions differently."""


@dataclass
class Environment:
    """What the preludes give a program: constants, definitions and the kinds of their nodes.

    ``origins`` says where each name was defined (``path:line``), for clash messages.
    """

    constants: dict[str, n.Const] = field(default_factory=dict)
    constant_kinds: dict[str, Kind | None] = field(default_factory=dict)
    kinds: dict[int, Kind] = field(default_factory=dict)
    defs: dict[str, n.Def] = field(default_factory=dict)
    def_kinds: dict[str, Kind | None] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)

    def extended(self) -> Environment:
        """A copy to add names to (the original is shared by many programs)."""
        return Environment(dict(self.constants), dict(self.constant_kinds), dict(self.kinds),
                           dict(self.defs), dict(self.def_kinds), dict(self.origins))

    def defines(self, name: str) -> bool:
        return name in self.constants or name in self.defs


@dataclass
class Analysis:
    """The checker's result: every diagnostic, and the kind of every typed node (by ``id``)."""

    diagnostics: list[Diagnostic]
    kinds: dict[int, Kind]
    environment: Environment


def check(program: n.Program, vocabulary: Vocabulary | None = None) -> list[Diagnostic]:
    """Check a parsed program against the bundled prelude.

    Args:
        program: from ``parse``.
        vocabulary: the terms typed literals may name (default: MIMIC-CXR-VQA's).

    Returns:
        Every problem found, sorted by position (empty when the program is fine).

    Raises:
        ProgramError: the bundled prelude itself does not check.
    """
    return analyze(program, vocabulary or Vocabulary.default()).diagnostics


def analyze(program: n.Program, vocabulary: Vocabulary | None,
            environment: Environment | None = None) -> Analysis:
    """Check ``program``; ``vocabulary=None`` skips the vocabulary (the compiler's use)."""
    base = environment if environment is not None else environment_for(program.preludes)
    env = base.extended()  # the program's own definitions stay its own
    checker = Checker(program.source, vocabulary, env)
    checker.program(program)
    return Analysis(sorted(checker.diagnostics, key=lambda d: d.sort_key),
                    {**env.kinds, **checker.kinds}, env)


def facts_read(program: n.Program) -> frozenset[str]:
    """Names of the image facts (findings, viewpos, gender) a program reads.

    A definition counts only where the program uses it, directly or through another one: a
    prelude's definition reading the view position must not make every program of its folder
    skip images without one (generate) or answer NULL for them (func_vqa). A name defined
    more than once (a program's own definition beside a prelude's) follows every candidate.
    """
    definitions: dict[str, list[n.Definition]] = {}
    for definition in (*(d for prelude in program.preludes for d in prelude.constants),
                       *program.definitions):
        definitions.setdefault(definition.name, []).append(definition)
    found: set[str] = set()
    followed: set[str] = set()
    pending: list[object] = [program.body, *(let.value for let in program.lets)]
    while pending:
        node = pending.pop()
        if isinstance(node, n.Fact):
            found.add(node.name)
        elif isinstance(node, (n.Name, n.Apply)) and node.name not in followed:
            followed.add(node.name)
            pending.extend(d.value for d in definitions.get(node.name, ()))
        if isinstance(node, n.Node):
            for item in fields(node):
                value = getattr(node, item.name)
                pending.extend(value if isinstance(value, tuple) else (value,))
    return frozenset(found)


def check_prelude(prelude: n.Prelude, vocabulary: Vocabulary | None = None,
                  bundled: bool = False) -> list[Diagnostic]:
    """Check a prelude file (default vocabulary when None).

    An author's prelude (``bundled=False``) adds to the bundled one: it may use the
    bundled names and must not define them again.
    """
    base = None if bundled else prelude_environment()
    return _prelude_analysis(prelude, vocabulary or Vocabulary.default(), base)[0]


_FOLDER_ENVIRONMENTS: dict[tuple[int, ...], tuple[tuple[n.Prelude, ...], Environment]] = {}


def environment_for(preludes: tuple[n.Prelude, ...] = ()) -> Environment:
    """The bundled prelude's environment plus the given author's preludes, checked once each.

    Raises:
        ProgramError: a prelude does not check.
    """
    if not preludes:
        return prelude_environment()
    key = tuple(map(id, preludes))
    entry = _FOLDER_ENVIRONMENTS.get(key)  # an entry holds its preludes: ids stay theirs
    if entry is None:
        env = prelude_environment()
        for prelude in preludes:
            diagnostics, env = _prelude_analysis(prelude, Vocabulary.default(), env)
            if diagnostics:
                raise program_error(diagnostics)
        entry = _FOLDER_ENVIRONMENTS[key] = (preludes, env)
    return entry[1]


def folder_prelude(folder: Path) -> n.Prelude | None:
    """The author's ``_prelude.cxr`` of ``folder``, parsed (None if it has none or it is the bundled one).

    Raises:
        ProgramSyntaxError: it does not parse.
    """
    path = folder / PRELUDE_NAME
    if not path.is_file() or path.resolve() == prelude_path().resolve():
        return None
    return parse_prelude(read_program_text(path), path)


@functools.cache
def prelude_environment() -> Environment:
    """The bundled prelude, checked once (raises ProgramError if it is wrong)."""
    path = prelude_path()
    diagnostics, env = _prelude_analysis(
        parse_prelude(path.read_text(encoding="utf-8"), path), Vocabulary.default(), None)
    if diagnostics:
        raise program_error(diagnostics)
    # Clash messages name the bundled prelude without the install path.
    env.origins = {name: "the bundled prelude, line " + origin.rpartition(":")[2]
                   for name, origin in env.origins.items()}
    return env


def _prelude_analysis(prelude: n.Prelude, vocabulary: Vocabulary | None,
                      base: Environment | None) -> tuple[list[Diagnostic], Environment]:
    env = base.extended() if base is not None else Environment()
    checker = Checker(prelude.source, vocabulary, env)
    checker.definitions(prelude.constants)
    env.kinds.update(checker.kinds)
    return sorted(checker.diagnostics, key=lambda d: d.sort_key), env


def check_paths(paths: Iterable[str | Path], vocabulary: Vocabulary | None = None,
                out: TextIO | None = None) -> int:
    """Check program files and folders (``*.cxr``, recursively) and print the result.

    Each diagnostic is printed (to ``out``, default stdout) as
    ``path:line:col: error: message``, the source line and a caret.
    ``_prelude.cxr`` files are checked as preludes; programs are checked against
    the bundled prelude plus their folder's ``_prelude.cxr`` (an author's prelude).

    Returns:
        1 if anything is wrong (after a count of errors), else 0 after a one-line summary.
    """
    out = out or sys.stdout
    vocabulary = vocabulary or Vocabulary.default()
    try:
        prelude_environment()
    except ProgramError as err:
        print(err, file=out)
        return 1
    files, problems = program_files(paths)
    # A broken folder prelude is what each of its programs reports: print and count it once.
    reports: dict[Path, tuple[list[str], int]] = {}
    unchecked = 0
    for path in files:
        owner, found, count = _check_file(path, vocabulary)
        unchecked += owner != path
        if found:
            reports.setdefault(owner, (found, count))
    for error in problems + [line for found, _ in reports.values() for line in found]:
        print(error, file=out)
    if problems or reports:
        total = len(problems) + sum(count for _, count in reports.values())
        summary = f"found {_plural(total, 'error')} in {_plural(len(problems) + len(reports), 'file')}"
        if unchecked:
            summary += (f"; not checked: {_plural(unchecked, 'program')} whose folder's "
                        f"{PRELUDE_NAME} has errors")
        print(summary, file=out)
        return 1
    preludes = sum(path.name == PRELUDE_NAME for path in files)
    extra = f" and {_plural(preludes, 'prelude')}" if preludes else ""
    print(f"checked {_plural(len(files) - preludes, 'program')}{extra}: no errors", file=out)
    return 0


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def program_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[str]]:
    """The .cxr files named by ``paths`` (folders recursively), and a message for each path that gives none.

    Non-regular files found in a folder are skipped with a warning on stderr.
    """
    files: list[Path] = []
    problems: list[str] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(path.rglob("*.cxr"))
            # A FIFO would block the read and a link to /dev/zero never end: regular files only.
            for other in (name for name in found if not name.is_file()):
                print(f"{other}: warning: not a regular file, skipped", file=sys.stderr)
            found = [name for name in found if name.is_file()]
            files.extend(found)
            if not found:
                problems.append(f"{given}: error: no .cxr files in this folder")
        elif path.is_file():
            files.append(path)
        elif path.exists():
            problems.append(f"{given}: error: not a regular file (a FIFO or device?)")
        else:
            problems.append(f"{given}: error: no such file or folder")
    # A file named twice (a file and its folder, two spellings, a link to it) is checked once.
    once: dict[Path, Path] = {}
    for path in files:
        once.setdefault(path.resolve(), path)
    return list(once.values()), problems


MAX_PROGRAM_BYTES = 1 << 20
"""Largest program file read; the bundled ones are a few hundred bytes."""
MAX_PER_CODE = 20
"""Diagnostics shown per error code and file; the rest are counted ("and N more")."""


def _bounded(diagnostics: list[Any]) -> list[str]:
    """Rendered diagnostics, at most MAX_PER_CODE of each code, then one line counting the rest."""
    shown: list[str] = []
    counts: dict[str, int] = {}
    for diagnostic in diagnostics:
        counts[diagnostic.code] = counts.get(diagnostic.code, 0) + 1
        if counts[diagnostic.code] <= MAX_PER_CODE:
            shown.append(diagnostic.render())
    name = diagnostics[0].source.name if diagnostics and diagnostics[0].source else "<program>"
    shown += [f"{name}: error: and {count - MAX_PER_CODE} more {code} errors"
              for code, count in counts.items() if count > MAX_PER_CODE]
    return shown


def read_program_text(path: Path) -> str:
    """The text of a program file: a regular file of UTF-8 text, at most MAX_PROGRAM_BYTES.

    A FIFO would block the read and a link to /dev/zero never end, so only regular files
    are read; ``check``, ``fmt`` and ``--programs`` folders all read through here.

    Raises:
        DataError: "<path>: <what is wrong>" (not found, not a regular file, too large,
            unreadable, not UTF-8).
    """
    try:
        if not path.is_file():  # is_file() is False for a missing path too
            what = "not a regular file" if path.exists() else "file not found"
            raise DataError(f"{path}: {what}; expected a .cxr program file")
        if path.stat().st_size > MAX_PROGRAM_BYTES:
            raise DataError(f"{path}: larger than {MAX_PROGRAM_BYTES} bytes; not a program file")
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read this file as UTF-8 text ({err})") from None
    try:
        # An editor's byte order mark is not part of the program ('utf-8-sig' drops it).
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = len(data[data.rfind(b"\n", 0, err.start) + 1:err.start].decode("utf-8-sig")) + 1
        raise DataError(f"{path}:{line}:{column}: cannot read this file as UTF-8 text (byte "
                        f"0x{data[err.start]:02x} is not UTF-8; save it as UTF-8)") from None
    # As text mode would read it: '\r\n' and a lone '\r' end a line like '\n'.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def unreadable_program(err: DataError, path: Path) -> str:
    """``read_program_text``'s error as a ``check``/``fmt`` report line: "<path>: error: ..."."""
    place, _, what = str(err).removeprefix(str(path)).partition(": ")  # place: '' or ':line:col'
    return f"{path}{place}: error: {what}"


def _check_file(path: Path, vocabulary: Vocabulary) -> tuple[Path, list[str], int]:
    """The file the problems are in, the problems rendered (bounded per code), how many.

    That file is ``path`` itself, or its folder's prelude when that prelude is broken: the
    program is then not checked, since the names it uses are not known.
    """
    try:
        text = read_program_text(path)
    except DataError as err:
        return path, [unreadable_program(err, path)], 1
    owner = path
    try:
        if path.name == PRELUDE_NAME:
            bundled = path.resolve() == prelude_path().resolve()
            diagnostics = check_prelude(parse_prelude(text, path), vocabulary, bundled)
        else:
            program = parse(text, path)
            diagnostics = _folder_problems(path.parent)
            if diagnostics:
                owner = path.parent / PRELUDE_NAME
            else:
                preludes = tuple(p for p in [folder_prelude(path.parent)] if p is not None)
                diagnostics = check(replace(program, preludes=preludes), vocabulary)
    except ProgramError as err:  # a syntax error: the parser stops at the first
        diagnostics = list(err.diagnostics)
    except DataError as err:  # the folder's _prelude.cxr cannot be read: its problem, once
        prelude = path.parent / PRELUDE_NAME
        return prelude, [unreadable_program(err, prelude)], 1
    return owner, _bounded(list(diagnostics)), len(diagnostics)


def _folder_problems(folder: Path) -> list[Diagnostic]:
    """The diagnostics of the folder's own prelude, if it has a broken one."""
    try:
        prelude = folder_prelude(folder)
        if prelude is not None:
            environment_for((prelude,))
    except ProgramError as err:  # its own diagnostics: check_paths prints each once
        return list(err.diagnostics)
    return []


# --- the checker ---

def _did_you_mean(word: str, choices: Iterable[str], spelling: str = "{}") -> str | None:
    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f"did you mean '{spelling.format(close[0])}'?" if close else None


class Checker:
    """Types nodes and collects diagnostics for one program or prelude."""

    def __init__(self, source: Source | None, vocabulary: Vocabulary | None,
                 env: Environment) -> None:
        self.source = source
        self.vocabulary = vocabulary
        self.env = env
        self.diagnostics: list[Diagnostic] = []
        self.kinds: dict[int, Kind] = {}
        self.params: dict[str, n.Param] = {}
        self.param_uses: dict[str, n.ParamRef] = {}
        self.lets: dict[str, Kind | None] = {}
        self.let_uses: set[str] = set()
        self.own: set[str] = set()  # names this file defines
        self.scope: dict[str, Kind] | None = None  # a def's params while its body is checked
        self.in_definition = False
        # This file's definitions and lets not yet in scope (a use of one is out of order),
        # and the definition being checked.
        self.below: dict[str, n.Definition | n.Let] = {}
        self.defining: n.Definition | None = None

    def report(self, code: str, message: str, span: Span | None, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(code, message, span, self.source, hint))

    # --- program structure ---

    def program(self, program: n.Program) -> None:
        self.header(program)
        self.declared_below(program.lets)
        self.definitions(program.definitions)
        for let in program.lets:
            kind = self.visit(let.value)
            self.below.pop(let.name, None)
            if let.name in self.lets:
                self.report("E204", f"'{let.name}' is already defined", let.span)
            else:
                self.lets[let.name] = kind
        body = self.visit(program.body)
        if body is not None and body not in RESULT_KINDS[program.returns]:
            self.report("E303", f"the body is {body} but the header says "
                        f"'returns {program.returns}'", program.body.span)
        for let in program.lets:
            if let.name not in self.let_uses:
                self.report("E205", f"let '{let.name}' is never used", let.span)
        self.usage(self.params.values())

    def definitions(self, definitions: Iterable[n.Definition]) -> None:
        """Check a file's ``const`` and ``def`` items in order: each sees only those above it."""
        definitions = tuple(definitions)
        self.declared_below(definitions)
        for definition in definitions:
            self.definition(definition)
            self.below.pop(definition.name, None)

    def declared_below(self, items: Iterable[n.Definition | n.Let]) -> None:
        for item in items:
            self.below.setdefault(item.name, item)

    def not_yet_defined(self, name: str) -> str | None:
        """Why a name of this file is unknown where it is used: itself, or defined further down."""
        item = self.below.get(name)
        if item is None:
            return None
        if item is self.defining:
            return f"'{name}' is used in its own definition: definitions cannot be recursive"
        line = f", at line {item.span.line}" if item.span is not None else ""
        return (f"'{name}' is defined further down{line}: a name can be used only "
                f"below its definition")

    def definition(self, definition: n.Definition) -> None:
        """Check a ``const`` or ``def`` and add it to the environment (unless its name is taken)."""
        self.in_definition = True
        self.defining = definition
        if isinstance(definition, n.Def):
            self.scope = {}
            for param in definition.params:
                if param.name in self.scope:
                    self.report("E204", f"'{param.name}' is already defined", param.span)
                self.scope[param.name] = PARAM_KINDS[param.kind]
        kind = self.visit(definition.value)
        self.scope, self.in_definition, self.defining = None, False, None
        name = definition.name
        if name in self.own:
            self.report("E204", f"'{name}' is already defined", definition.span)
            return
        if self.env.defines(name):
            self.report("E207", f"'{name}' is already defined by a prelude "
                        f"({self.env.origins.get(name, 'bundled')})", definition.span,
                        "choose another name")
            return
        self.own.add(name)
        if definition.span is not None and self.source is not None:
            self.env.origins[name] = f"{self.source.name}:{definition.span.line}"
        if isinstance(definition, n.Def):
            self.env.defs[name], self.env.def_kinds[name] = definition, kind
        else:
            self.env.constants[name], self.env.constant_kinds[name] = definition, kind

    def header(self, program: n.Program) -> None:
        stem = self.source.stem if self.source else None
        if stem is not None and stem != program.name:
            self.report("E406", f"program '{program.name}' must be named after its file "
                        f"'{stem}'", self.find(program.name, program.span))
        semantic = program.semantic_type
        if semantic is not None and semantic not in SEMANTIC_TYPES:
            self.report("E408", f"unknown semantic type '{semantic}'",
                        self.find_line("semantic_type", program.span),
                        f"semantic types: {', '.join(SEMANTIC_TYPES)}")
        for param in program.params:
            if param.name in self.params:
                self.report("E405", f"param '{param.name}' is declared twice", param.span)
            self.params.setdefault(param.name, param)
        self.param_names(self.params.values())
        for template in program.templates:
            self.template(template)

    def param_names(self, params: Iterable[n.Param]) -> None:
        # Argument keys come from the names (cxrvqa.lang.templates.argument_key).
        by_kind: dict[str, list[n.Param]] = {}
        for param in params:
            by_kind.setdefault(param.kind, []).append(param)
        for kind, group in by_kind.items():
            expected = expected_param_names(kind, len(group))
            wrong = [p for p in group if p.name not in expected]
            if wrong:
                noun = "param" if len(group) == 1 else "params"
                names = ", ".join(f"'{e}'" for e in expected)
                self.report("E407", f"{len(group)} {kind} {noun} must be named {names}",
                            wrong[0].span)

    def template(self, template: n.Template) -> None:
        slots = template_slots(template.text)
        for slot in slots:
            if slot not in self.params:
                self.report("E401", f"template slot '${{{slot}}}' has no param",
                            self.slot_span(template, slot),
                            _did_you_mean(slot, self.params, "${{{}}}"))
        named = set(slots)
        for name in self.params:
            if name not in named:
                # '$object' or an unclosed '${object': meant as the slot, written otherwise.
                near = re.search(r"\$\{?" + re.escape(name) + r"\b(?!\})", template.text)
                self.report("E402", f"template does not mention param '{name}'",
                            self.find(near.group(), template.span) if near else template.span,
                            f"write the slot as '${{{name}}}'" if near else None)

    def slot_span(self, template: n.Template, slot: str) -> Span | None:
        """The slot's position in the file (the template's when escapes make it unclear)."""
        return self.find("${" + slot + "}", template.span)

    def find(self, text: str, within: Span | None) -> Span | None:
        """Where ``text`` first occurs inside ``within`` (``within`` itself if it does not)."""
        if within is None or self.source is None:
            return within
        found = self.source.text.find(text, within.start, within.end)
        return self.source.point(found) if found >= 0 else within

    def find_line(self, keyword: str, within: Span | None) -> Span | None:
        """Where a line starting with ``keyword`` is inside ``within`` (``within`` if nowhere)."""
        if within is None or self.source is None:
            return within
        found = re.compile(rf"^[ \t]*({keyword})\b", re.MULTILINE).search(
            self.source.text, within.start, within.end)
        return self.source.point(found.start(1)) if found else within

    def operator_span(self, node: n.Binary) -> Span | None:
        """The operator of a binary node: it is what an operand-kind error is about."""
        if node.left.span is None or self.source is None:
            return node.span
        # Between the left operand and the operator: blanks, comments and closing parentheses.
        found = _BEFORE_OPERATOR.match(self.source.text, node.left.span.end)
        if found and self.source.text.startswith(node.op, found.end()):
            return self.source.point(found.end())
        return node.span

    def usage(self, params: Iterable[n.Param]) -> None:
        for param in params:
            use = self.param_uses.get(param.name)
            if param.ignored and use is not None:
                self.report("E404", f"param '{param.name}' is marked ignored but used", use.span)
            elif not param.ignored and use is None:
                self.report("E403", f"param '{param.name}' is never used", param.span,
                            "mark it 'ignored' if the answer does not depend on it")

    # --- expressions ---

    def visit(self, node: n.Expr) -> Kind | None:
        kind: Kind | None = getattr(self, "visit_" + type(node).__name__)(node)
        if kind is not None:
            self.kinds[id(node)] = kind
        return kind

    def visit_Fact(self, node: n.Fact) -> Kind:
        return FACT_KINDS[node.name]

    def visit_Number(self, node: n.Number) -> Kind:
        return Kind.NUMBER

    def visit_ParamRef(self, node: n.ParamRef) -> Kind | None:
        if self.in_definition:
            self.report("E206", f"a definition cannot use the program's param '${node.name}'",
                        node.span, f"give it a parameter, e.g. 'def f(x: object) = ...', and "
                        f"call 'f(${node.name})'")
            if node.name in self.params:  # one mistake, one message: not also "never used"
                self.param_uses.setdefault(node.name, node)
            return None
        param = self.params.get(node.name)
        if param is None:
            self.report("E202", f"unknown parameter '${node.name}'", node.span,
                        _did_you_mean(node.name, self.params, "${}"))
            return None
        self.param_uses.setdefault(node.name, node)
        return PARAM_KINDS[param.kind]

    def visit_Name(self, node: n.Name) -> Kind | None:
        if self.scope is not None and node.name in self.scope:
            return self.scope[node.name]
        if node.name in self.lets:
            self.let_uses.add(node.name)
            return self.lets[node.name]
        if node.name in self.env.constants:
            return self.env.constant_kinds[node.name]
        if self.defining is not None and isinstance(self.below.get(node.name), n.Let):
            self.report("E206", f"a definition cannot use the program's let '{node.name}'",
                        node.span, "give the definition a parameter and pass the let to it")
            return None
        out_of_order = self.not_yet_defined(node.name)
        self.report("E201", out_of_order or f"unknown name '{node.name}'", node.span,
                    None if out_of_order else _did_you_mean(
                        node.name, [*self.lets, *(self.scope or ()), *self.env.constants,
                                    *get_args(n.FactName)]))  # 'findngs' -> 'findings'
        return None

    def visit_Term(self, node: n.Term) -> Kind:
        kind = PARAM_KINDS[node.kind]
        self.vocabulary_terms(node, kind, (node.value,))
        return kind

    def visit_TermSet(self, node: n.TermSet) -> Kind:
        kind = PLURAL_KINDS[node.kind]
        self.vocabulary_terms(node, ELEMENT_OF[kind], node.values)
        return kind

    def vocabulary_terms(self, node: n.Node, kind: Kind, values: Iterable[str]) -> None:
        if self.vocabulary is None:
            return
        allowed = self.vocabulary.terms(kind)
        for value in values:
            if value not in allowed:
                hint = _did_you_mean(value, allowed)
                if hint is None and len(allowed) <= _LISTED_TERMS:  # AP/PA, M/F: name them
                    hint = "expected " + " or ".join(f"'{t}'" for t in sorted(allowed))
                self.report("E203", f"unknown {str(kind).lower()} '{value}'", node.span, hint)

    def visit_SetOf(self, node: n.SetOf) -> Kind | None:
        kinds = [self.visit(e) for e in node.elements]
        if None in kinds:
            return None
        distinct = list(dict.fromkeys(kinds))
        if distinct[0] not in SCALAR_KINDS or len(distinct) > 1:
            got = " and ".join(str(k) for k in distinct)
            self.report("E305", f"set elements must be scalars of one kind, got {got}", node.span)
            return None
        return SET_OF[distinct[0]]

    def visit_Filter(self, node: n.Filter) -> Kind | None:
        source = self.visit(node.source)
        for condition in node.conditions:
            self.condition(condition)
        if source not in (Kind.FINDINGS, None):
            self.report("E304", f"a filter needs Findings, got {source}", node.source.span)
            return None
        return Kind.FINDINGS

    def condition(self, condition: n.Condition) -> None:
        value = self.visit(condition.value)
        expected = FIELD_KINDS[condition.field]
        if condition.op == "in":
            expected = SET_OF[expected]
        if value is not None and value is not expected:
            self.report("E304", f"'{condition.field} {condition.op}' needs {expected}, got {value}",
                        condition.value.span)

    def visit_Call(self, node: n.Call) -> Kind | None:
        kinds = tuple(self.visit(arg) for arg in node.args)
        signature = SIGNATURES[node.function]
        if len(kinds) != signature.arity:
            noun = "argument" if signature.arity == 1 else "arguments"
            self.report("E302", f"'{node.function}' takes {signature.arity} {noun}, "
                        f"got {len(kinds)}", node.span)
            return None
        return self.operator(node.function, kinds, node.span)

    def visit_Apply(self, node: n.Apply) -> Kind | None:
        kinds = tuple(self.visit(arg) for arg in node.args)
        definition = self.env.defs.get(node.name)
        if definition is None:
            out_of_order = self.not_yet_defined(node.name)
            self.report("E106", out_of_order or f"unknown function '{node.name}'", node.span,
                        None if out_of_order else
                        "functions: " + ", ".join(sorted([*n.FUNCTIONS, *self.env.defs])))
            return None
        expected = tuple(PARAM_KINDS[p.kind] for p in definition.params)
        if len(kinds) != len(expected):
            noun = "argument" if len(expected) == 1 else "arguments"
            self.report("E302", f"'{node.name}' takes {len(expected)} {noun}, got {len(kinds)}",
                        node.span)
            return None
        if None in kinds:
            return None
        if kinds != expected:
            self.report("E301", f"'{node.name}' needs {' and '.join(map(str, expected))}, "
                        f"got {' and '.join(map(str, kinds))}", node.span)
            return None
        return self.env.def_kinds[node.name]

    def visit_Binary(self, node: n.Binary) -> Kind | None:
        kinds = (self.visit(node.left), self.visit(node.right))
        return self.operator(node.op, kinds, self.operator_span(node))

    def visit_Not(self, node: n.Not) -> Kind | None:
        return self.operator("not", (self.visit(node.operand),), node.span)

    def operator(self, op: str, kinds: tuple[Kind | None, ...], span: Span | None) -> Kind | None:
        if None in kinds:
            return None
        signature = SIGNATURES[op]
        result = signature.result(kinds)  # type: ignore[arg-type]  # None excluded above
        if result is None:
            got = " and ".join(str(k) for k in kinds)
            self.report("E301", f"'{op}' needs {signature.needs}, got {got}", span)
        return result

