"""Format program files canonically (``cxrvqa fmt``), keeping their comments.

The printer gives the canonical text of every item (one line each); this module
puts back the ``//`` comments the parser skips:

* comment lines before an item (or inside a multi-line item) stay on their own
  lines just before that item, with single blank lines kept between them and
  between them and the item;
* a comment at the end of a one-line item stays at the end of its line;
* comments after the last item stay at the end of the file.

A commented item inside a block gets a blank line before its comments. Formatting
a formatted file changes nothing.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from cxrvqa.errors import DataError, ProgramError
from cxrvqa.lang import nodes as n
from cxrvqa.lang.check import program_files, read_program_text, unreadable_program
from cxrvqa.lang.parser import item_lines, parse, parse_prelude
from cxrvqa.lang.printer import format_node, program_blocks
from cxrvqa.lang.resources import PRELUDE_NAME

__all__ = ["format_paths", "format_source"]

# A string (skipped: '//' inside it is text) or a comment.
_STRING_OR_COMMENT = re.compile(r'"(?:[^"\\\n]|\\["\\])*"|//[^\n]*')


@dataclass
class _Comments:
    """The comments attached to one item."""

    before: list[str] = field(default_factory=list)  # lines, '' for a kept blank line
    after: str | None = None  # an end-of-line comment


def format_source(text: str, path: str | Path | None = None) -> str:
    """The canonical text of a program file (a prelude if ``path`` is named ``_prelude.cxr``).

    Raises:
        ProgramSyntaxError: the text does not parse.
    """
    prelude = path is not None and Path(path).name == PRELUDE_NAME
    node = parse_prelude(text, path) if prelude else parse(text, path)
    blocks = _blocks(node)
    spans = item_lines(text, "prelude" if prelude else "program")
    items = [item for block in blocks for item in block]
    assert len(spans) == len(items), (spans, items)  # one parse-tree child per printed item
    comments, tail = _attach(text, spans)
    out: list[str] = []
    number = 0
    for block_number, block in enumerate(blocks):
        if block_number and out:
            out.append("")
        for position, item in enumerate(block):
            attached = comments[number]
            if attached.before and position and out and out[-1] != "":
                out.append("")
            out += attached.before
            out.append(item + (f"  {attached.after}" if attached.after else ""))
            number += 1
    if tail:
        out += ["", *tail] if out else tail
    return "\n".join(out) + "\n" if out else ""


def _blocks(node: n.Program | n.Prelude) -> list[list[str]]:
    if isinstance(node, n.Program):
        return program_blocks(node)
    return [[format_node(definition) for definition in node.constants]]


def _attach(text: str, spans: list[tuple[int, int]]) -> tuple[list[_Comments], list[str]]:
    """Each item's comments, and the comment lines after the last item."""
    comments = [_Comments() for _ in spans]
    tail: list[str] = []
    lines = text.split("\n")
    previous: dict[int, int] = {}  # item -> source line of its last comment so far
    last_tail = 0  # source line of the last comment after the last item
    for match in _STRING_OR_COMMENT.finditer(text):
        if not match.group().startswith("//"):
            continue
        line = text.count("\n", 0, match.start()) + 1
        comment = match.group().rstrip()
        own_line = not lines[line - 1][: match.start() - text.rfind("\n", 0, match.start()) - 1].strip()
        item = next((i for i, (_, end) in enumerate(spans) if end >= line), None)
        if item is None:
            if tail and _blank_between(lines, last_tail, line):
                tail.append("")
            tail.append(comment)
            last_tail = line
            continue
        first, last = spans[item]
        if not own_line and first == last == line:
            comments[item].after = comment
            continue
        target = comments[item].before
        if item in previous and _blank_between(lines, previous[item], line):
            target.append("")
        target.append(comment)
        previous[item] = line
    for item, last_comment in previous.items():
        if _blank_between(lines, last_comment, spans[item][0]):
            comments[item].before.append("")
    return comments, tail


def _blank_between(lines: list[str], above: int, below: int) -> bool:
    """Whether a blank line separates source lines ``above`` and ``below`` (1-based)."""
    return any(not lines[i - 1].strip() for i in range(above + 1, below))


def format_paths(paths: Iterable[str | Path], check: bool = False,
                 out: TextIO | None = None,
                 write: Callable[[Path, str], None] | None = None) -> int:
    """Format ``.cxr`` files and folders in place, or with ``check`` only report what would change.

    ``write(path, text)`` replaces a file (default ``Path.write_text``, which truncates first);
    the command line passes a staged, all-or-nothing writer, which this layer cannot import.

    Returns:
        0 when every file is (now) formatted; 1 if ``check`` found a file to change, a file
        does not parse (its syntax error is printed) or cannot be read, or a path names no
        program file (each problem is printed, as ``check`` prints it).
    """
    out = out or sys.stdout
    files, problems = program_files(paths)
    for problem in problems:
        print(problem, file=out)
    status, changed, total = int(bool(problems)), 0, 0
    for path in files:
        total += 1
        try:
            text = read_program_text(path)
            formatted = format_source(text, path)
        except DataError as err:
            print(unreadable_program(err, path), file=out)
            status = 1
            continue
        except ProgramError as err:
            print(err, file=out)
            status = 1
            continue
        if formatted == text:
            continue
        changed += 1
        if check:
            out.writelines(difflib.unified_diff(text.splitlines(True), formatted.splitlines(True),
                                                f"{path}", f"{path} (formatted)"))
            status = 1
        else:
            if write is None:
                path.write_text(formatted, encoding="utf-8")
            else:
                write(path, formatted)
    verb = "would reformat" if check else "reformatted"
    print(f"{verb} {changed} of {total} file(s)", file=out)
    return status
