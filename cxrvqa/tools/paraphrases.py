"""Mine paraphrases: the template wordings of released-style question files, as program lines.

The released MIMIC-CXR-VQA question files carry, in each record's ``template``, the
paraphrase its ``question`` was filled from, and in ``template_program`` the program
it asks. ``mine`` collects those wordings per program (deduplicated, most frequent
first, wordings the program already has left out), checks that each one's ``${slots}``
are exactly the program's params, and ``write_program_set`` writes a copy of the
program set in which every program gains its mined wordings as extra ``template``
lines::

    report = mine([Path("train.json")], programs)
    write_program_set(programs, report, Path("programs-with-paraphrases"))

A program file is printed back from its parsed form with the new template nodes
added (``lang.printer.format_node``), so every header line the language knows
survives; the comment lines at the top of the file are kept, comments inside are not.
The author's folder preludes the programs use are copied as the copy's ``_prelude.cxr``.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cxrvqa.build.jsonio import read_json
from cxrvqa.build.output import write_files_atomically
from cxrvqa.errors import DataError
from cxrvqa.lang import nodes as n
from cxrvqa.lang.printer import format_node
from cxrvqa.lang.resources import PRELUDE_NAME, programs_dir
from cxrvqa.lang.templates import template_slots

__all__ = ["MineReport", "check_out_folder", "mine", "with_paraphrases", "write_program_set"]


@dataclass
class MineReport:
    """Per program: the new wordings, most frequent first, with their counts; and the problems."""

    found: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    known: Counter[str] = field(default_factory=Counter)  # records whose wording the program has
    problems: list[str] = field(default_factory=list)  # "file: record N: what is wrong"

    def render(self, programs: Sequence[str]) -> str:
        lines = [f"{name}: {len(self.found.get(name, []))} paraphrase(s) mined"
                 + (f" ({self.known[name]} record(s) already worded as the program)"
                    if self.known[name] else "") for name in programs]
        lines += [f"skipped {problem}" for problem in self.problems]
        return "\n".join(lines)


def mine(files: Sequence[Path], programs: Mapping[str, n.Program]) -> MineReport:
    """The paraphrases of ``files`` for ``programs`` (see the module docstring).

    Raises:
        DataError: a file is missing, not JSON, or not a list of records.
    """
    counts: dict[str, Counter[str]] = {}
    report = MineReport()
    for path in files:
        records = read_json(path, "a question file (a JSON list of records)")
        if not isinstance(records, list):
            raise DataError(f"{path}: expected a JSON list of question records")
        for number, record in enumerate(records):
            found = _wording(record, programs)
            if isinstance(found, str):
                report.problems.append(f"{path}: record {number}: {found}")
                continue
            name, text = found
            if any(t.text == text for t in programs[name].templates):
                report.known[name] += 1
            else:
                counts.setdefault(name, Counter())[text] += 1
    for name, counted in counts.items():
        # Counter keeps first-seen order among equals: ties stay in file order.
        report.found[name] = sorted(counted.items(), key=lambda item: -item[1])
    return report


def _wording(record: object, programs: Mapping[str, n.Program]) -> tuple[str, str] | str:
    """(program, template) of a record, or what is wrong with it."""
    if not isinstance(record, dict):
        return "expected a JSON object"
    name, text = record.get("template_program"), record.get("template")
    if not isinstance(name, str) or not isinstance(text, str) or not text.strip():
        return "expected string fields 'template' and 'template_program'"
    program = programs.get(name)
    if program is None:
        return f"unknown template_program {name!r}"
    slots = template_slots(text)
    params = sorted(p.name for p in program.params)
    if sorted(slots) != params:
        shown = ", ".join(f"${{{s}}}" for s in slots) or "none"
        wanted = ", ".join(f"${{{p}}}" for p in params) or "none"
        return f"template {text!r} has slots {shown}; {name} has params {wanted}"
    if "\n" in text:
        return f"template {text!r} spans lines"
    return name, text


def with_paraphrases(program: n.Program, texts: Sequence[str]) -> n.Program:
    """``program`` with ``texts`` as extra template lines after its own."""
    extra = tuple(n.Template(text) for text in texts)
    return dataclasses.replace(program, templates=program.templates + extra)


def check_out_folder(out: Path) -> None:
    """Refuse the bundled programs folder as ``out`` (call it before mining, to fail at once).

    Writing there would change every command's programs, and the pinned outputs, for everyone
    using this install.

    Raises:
        DataError: ``out`` is the bundled programs folder.
    """
    if out.resolve() == programs_dir().resolve():
        raise DataError(f"{out}: is the bundled programs folder; write the mined copy to a "
                        f"folder of your own and pass it with --programs")


def write_program_set(programs: Mapping[str, n.Program], report: MineReport, out: Path) -> None:
    """Write every program, with its mined paraphrases, to ``out/<name>.cxr`` (all or none).

    Raises:
        DataError: ``out`` is the bundled programs folder (see ``check_out_folder``).
    """
    check_out_folder(out)
    files = {}
    for name, program in programs.items():
        texts = [text for text, _ in report.found.get(name, [])]
        files[f"{name}.cxr"] = (_leading_comments(program)
                                + format_node(with_paraphrases(program, texts))).encode("utf-8")
    prelude = _author_prelude(programs)
    if prelude:  # without it, programs of an author's folder name what is not defined
        files[PRELUDE_NAME] = prelude.encode("utf-8")
    write_files_atomically(out, files)


def _author_prelude(programs: Mapping[str, n.Program]) -> str:
    """The text of the author's preludes the programs see (the bundled one is always seen);
    those of several folders one after another, so that a name two define is reported by
    ``cxrvqa check`` of the copy."""
    texts: dict[str, str] = {}
    for program in programs.values():
        for prelude in program.preludes:
            if prelude.source is not None:
                texts.setdefault(prelude.source.text, prelude.source.name)
    if len(texts) == 1:
        return next(iter(texts))
    return "\n".join(f"// from {name}\n{text.rstrip()}\n" for text, name in texts.items())


def _leading_comments(program: n.Program) -> str:
    """The ``//`` lines a program file starts with (they say where its rule comes from)."""
    if program.source is None:
        return ""
    kept = []
    for line in program.source.text.splitlines():
        if not line.startswith("//"):
            break
        kept.append(line + "\n")
    return "".join(kept)
