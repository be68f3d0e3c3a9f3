"""Load template programs, keep them by name, and answer question records with them.

This is the few-lines path a pipeline uses::

    programs = load_programs()                      # the 48 bundled programs, checked
    answer(programs, record, facts)                 # -> ["yes"] / ["no"] / sorted list

A record gives ``template_program`` and ``template_arguments``
(``{"object": {"0": ...}, "attribute": {...}, ...}``). Each program is compiled
once and keeps its compiled form, so answering never re-parses.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import cast

from cxrvqa.errors import EvaluationError, ProgramError
from cxrvqa.facts import ImageFacts
from cxrvqa.lang import nodes as n
from cxrvqa.lang.answers import render
from cxrvqa.lang.check import check
from cxrvqa.lang.compiler import Evaluator, compile_program
from cxrvqa.lang.diagnostics import Diagnostic, program_error
from cxrvqa.lang.kinds import Vocabulary
from cxrvqa.lang.parser import parse
from cxrvqa.lang.resources import programs_dir
from cxrvqa.lang.templates import argument_key

__all__ = ["answer", "answer_record", "argument_plan", "bundled_programs", "evaluate", "load_program",
           "load_programs", "runner"]

# (kind, argument keys, positions in the program's params) for each kind a program declares.
_Plan = tuple[tuple[str, tuple[str, ...], tuple[int, ...]], ...]


def load_program(path: str | os.PathLike[str], vocabulary: Vocabulary | None = None) -> n.Program:
    """Parse and check one program file.

    Raises:
        ProgramError: with every diagnostic of the file.
    """
    path = Path(path)
    program = parse(path.read_text(encoding="utf-8"), path)
    diagnostics = check(program, vocabulary)
    if diagnostics:
        raise program_error(diagnostics)
    return program


def load_programs(directory: str | os.PathLike[str] | None = None,
                  vocabulary: Vocabulary | None = None) -> dict[str, n.Program]:
    """Load every ``*.cxr`` program of a folder (default: the bundled 48), keyed by program name.

    Files whose name starts with ``_`` (the prelude) are not programs.

    Raises:
        ProgramError: with the diagnostics of every file that fails.
    """
    folder = Path(directory) if directory is not None else programs_dir()
    files = sorted((p for p in folder.glob("*.cxr") if not p.name.startswith("_")),
                   key=lambda p: (len(p.stem), p.stem))
    programs: dict[str, n.Program] = {}
    diagnostics: list[Diagnostic] = []
    for path in files:
        try:
            program = load_program(path, vocabulary)
        except ProgramError as err:
            diagnostics.extend(err.diagnostics)
        else:
            programs[program.name] = program
    if diagnostics:
        raise program_error(diagnostics)
    return programs


@functools.cache
def bundled_programs() -> dict[str, n.Program]:
    """The 48 bundled programs, loaded once per process."""
    return load_programs()


def evaluate(program: n.Program, facts: ImageFacts, /, **bindings: str) -> list[str]:
    """Answer ``program`` on one image, with parameters bound by name.

    Args:
        program: a parsed program (it is checked and compiled once, on first use).
        facts: the image's facts.
        **bindings: one value per parameter, e.g. ``object="left lung"``
            (``ignored`` parameters may be left out).

    Returns:
        ``["yes"]``, ``["no"]`` or a sorted, lower-cased list.

    Raises:
        ProgramError: the program does not check.
        EvaluationError: a binding is missing or the facts cannot answer it.

    Example:
        >>> p = parse('program p template "Is there ${attribute}?" param attribute: attribute '
        ...           'returns bool exists(findings[attribute = $attribute])')
        >>> evaluate(p, ImageFacts([("left lung", "pneumonia", "disease")]), attribute="pneumonia")
        ['yes']
    """
    evaluator, _, _ = _compiled(program)
    names = {p.name for p in program.params}
    for name in bindings.keys() - names:
        raise EvaluationError(f"{program.name}: no param named '{name}'")
    args = []
    for param in program.params:
        value = bindings.get(param.name)
        if not param.ignored and not isinstance(value, str):
            raise EvaluationError(f"{program.name}: param '{param.name}' needs a name, "
                                  f"got {value!r}")
        args.append(value)
    return render(evaluator.run(facts, args))  # type: ignore[arg-type]  # checked: bool or set


def answer(programs: Mapping[str, n.Program], record: Mapping[str, object],
           facts: ImageFacts) -> list[str]:
    """Answer one question record on its image's facts.

    Args:
        programs: from ``load_programs``.
        record: with ``template_program`` and ``template_arguments``; argument kinds
            the program does not declare are ignored.
        facts: the facts of the record's image.

    Raises:
        EvaluationError: unknown program, wrong arguments, or facts that cannot answer.

    Example:
        >>> facts = ImageFacts([("left lung", "pneumonia", "disease")], "AP", "F", {})
        >>> answer(bundled_programs(), {"template_program": "program_22",
        ...        "template_arguments": {"attribute": {"0": "pneumonia"}}}, facts)
        ['yes']
    """
    name = record.get("template_program")
    program = programs.get(name) if isinstance(name, str) else None
    if program is None:
        raise EvaluationError(f"unknown template program {name!r}")
    evaluator, plan, bind = _compiled(program)
    arguments = record.get("template_arguments")
    args = bind(arguments)
    if args is None:
        args = _checked_arguments(program, plan, arguments)
    return render(evaluator.run(facts, args))  # type: ignore[arg-type]  # checked: bool or set


def runner(program: n.Program) -> tuple[Callable[[ImageFacts, list[str | None]], object], _Binder]:
    """The compiled ``run(facts, args)`` of ``program`` and its binder from ``template_arguments``.

    ``answer`` is ``render(run(facts, bind(arguments)))`` when ``bind`` returns a list; when it
    returns None, ``answer`` says what is wrong. A bulk caller looks both up once per program
    instead of once per question.
    """
    evaluator, _, bind = _compiled(program)
    return evaluator.run, bind  # type: ignore[return-value]


def _checked_arguments(program: n.Program, plan: _Plan, arguments: object) -> list[str | None]:
    """The program's args from ``template_arguments``, or the error that says what is wrong."""
    args: list[str | None] = [None] * len(program.params)
    arguments = arguments or {}
    try:
        for kind, keys, positions in plan:
            given = arguments.get(kind) or {}  # type: ignore[attr-defined]
            if len(given) != len(keys):
                raise EvaluationError(f"{program.name}: expected {len(keys)} {kind} "
                                      f"argument(s), got {len(given)}")
            for key, position in zip(keys, positions):
                value = given.get(key)
                if not isinstance(value, str):
                    raise EvaluationError(f"{program.name}: {kind} argument '{key}' "
                                          f"needs a name, got {value!r}")
                args[position] = value
    except (AttributeError, TypeError):
        raise EvaluationError(f"{program.name}: template_arguments must map kinds to "
                              f"{{\"0\": name, ...}}, got {arguments!r}") from None
    return args


def answer_record(record: Mapping[str, object], facts: ImageFacts) -> list[str]:
    """``answer`` with the bundled programs."""
    return answer(bundled_programs(), record, facts)


_Binder = Callable[[object], "list[str | None] | None"]


# Compiled forms by program identity. An entry holds its program, so the id cannot be reused
# while the entry lives; programs are few (48 bundled plus an author's), the bound is a safety net.
_COMPILED: dict[int, tuple[n.Program, Evaluator, _Plan, _Binder]] = {}
_MAX_COMPILED = 4096


def _compiled(program: n.Program) -> tuple[Evaluator, _Plan, _Binder]:
    entry = _COMPILED.get(id(program))
    if entry is None:
        if len(_COMPILED) >= _MAX_COMPILED:
            _COMPILED.pop(next(iter(_COMPILED)))
        plan = argument_plan(program)
        entry = _COMPILED[id(program)] = (program, compile_program(program), plan,
                                          _binder(program, plan))
    return entry[1], entry[2], entry[3]


def _binder(program: n.Program, plan: _Plan) -> _Binder:
    """A function from well-formed ``template_arguments`` straight to the program's args.

    Binding runs once per question, so it is generated like the program itself. On
    anything unusual it returns None and ``_checked_arguments`` says what is wrong.
    """
    names = ["None"] * len(program.params)
    lines = []
    for number, (kind, keys, positions) in enumerate(plan):
        lines += [f"given = arguments[{kind!r}]", f"if len(given) != {len(keys)}: return None"]
        for key, position in zip(keys, positions):
            lines.append(f"a{position} = given[{key!r}]")
            names[position] = f"a{position}"
    bound = [name for name in names if name != "None"]
    checks = " or ".join(f"type({name}) is not str" for name in bound) or "False"
    source = ("def bind(arguments):\n    try:\n"
              + "".join(f"        {line}\n" for line in lines or ["pass"])
              + "    except (KeyError, TypeError, AttributeError):\n        return None\n"
              + f"    return None if {checks} else [{', '.join(names)}]\n")
    namespace: dict[str, object] = {}
    exec(compile(source, f"<cxrvqa {program.name} arguments>", "exec"), namespace)  # noqa: S102
    return cast(_Binder, namespace["bind"])


def argument_plan(program: n.Program) -> _Plan:
    """(kind, argument keys, parameter positions) for each kind the program declares."""
    plan = []
    for kind in dict.fromkeys(p.kind for p in program.params):
        entries = sorted((argument_key(p.name), i) for i, p in enumerate(program.params) if p.kind == kind)
        plan.append((kind, tuple(k for k, _ in entries), tuple(i for _, i in entries)))
    return tuple(plan)


n.RUNTIME["evaluate"] = evaluate  # serves the deprecated Program.evaluate (see lang/nodes.py)
