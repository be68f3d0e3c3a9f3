"""Read JSON files with one-line errors, and pause the cycle collector around bulk object building."""

from __future__ import annotations

import gc
import json
import re
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cxrvqa.errors import DataError

__all__ = ["MAX_DEPTH", "MAX_INT_DIGITS", "JSONLimitError", "decode_json", "paused_gc",
           "not_found", "not_utf8", "read_json", "refuse_device"]

MAX_DEPTH = 200
"""Nesting always accepted; cxrvqa's inputs nest at most 5 levels. Deeper input is refused where
Python's parser stops (it recurses per level): near the recursion limit (1,000 by default) on
3.11, at the C recursion limit on 3.12+; either way one JSONLimitError naming the first
level past 200 (see ``_nesting_limit``)."""
MAX_INT_DIGITS = 30
"""Longest integer accepted: ids and coordinates are far shorter, and longer ones overflow
numpy or end in Python's 4300-digit ValueError."""


class JSONLimitError(ValueError):
    """JSON that nests too deep or holds too long an integer; the message starts 'line:col'."""


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise JSONLimitError(f"integer of {len(text)} characters")
    return int(text)


def _position(data: bytes | str, offset: int) -> str:
    head = data[:offset]
    newline = b"\n" if isinstance(head, bytes) else "\n"
    return f"{head.count(newline) + 1}:{offset - (head.rfind(newline) + 1) + 1}"  # type: ignore[arg-type]


def _too_deep_at(data: bytes | str) -> int:
    """Offset of the first bracket nested deeper than MAX_DEPTH (strings skipped)."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    depth, in_string, escaped = 0, False, False
    for offset, char in enumerate(text):
        if in_string:
            escaped, in_string = (not escaped and char == "\\"), in_string and (escaped or char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return offset
        elif char in "]}":
            depth -= 1
    return len(text)


def _long_int_at(data: bytes | str) -> int:
    pattern = rb"-?[0-9]{%d,}" if isinstance(data, bytes) else r"-?[0-9]{%d,}"
    # (re's overloads cannot pair a str-or-bytes pattern with a subject of the same type)
    match = re.search(pattern % (MAX_INT_DIGITS + 1), data)  # type: ignore[arg-type]
    return match.start() if match else 0


# Python 3.11's JSON parser counts its levels against the interpreter's recursion limit,
# which is one per interpreter. The default refuses deep input cleanly; a host that raised it far
# above that would let hostile nesting overflow the C stack, so only then is it lowered for the
# call (3.12+ count the levels against their own C limit). Lowering it for every call would make
# other threads' deep calls fail while a decode runs.
_SAFE_LIMIT = 5_000
_OWN_LIMIT = sys.version_info < (3, 12)
# Two threads lowering at once must not interleave their lower-then-restore steps, or the later
# restore would keep the lowered limit for good.
_LIMIT_LOCK = threading.Lock()


@contextmanager
def _nesting_limit() -> Iterator[None]:
    """Keep the parser's recursion within what the C stack holds (see ``_SAFE_LIMIT``)."""
    if not _OWN_LIMIT or sys.getrecursionlimit() <= _SAFE_LIMIT:
        yield
        return
    with _LIMIT_LOCK:
        previous = sys.getrecursionlimit()
        sys.setrecursionlimit(min(previous, _SAFE_LIMIT))
        try:
            yield
        finally:
            sys.setrecursionlimit(previous)


def decode_json(data: bytes | str, *, bounded_ints: bool = True,
                object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None) -> Any:
    """``json.loads`` with bounded nesting and (unless ``bounded_ints`` is False) integer length.

    Scene graphs hold hundreds of numbers each and check their ranges themselves, so they
    skip the per-integer hook.  ``object_pairs_hook`` is ``json.loads``'s (a reader that must see
    repeated keys).

    Raises:
        json.JSONDecodeError, UnicodeDecodeError: not JSON.
        JSONLimitError: too deep or too long an integer; the message names line:col.
    """
    try:
        with _nesting_limit():
            return json.loads(data, parse_int=_bounded_int if bounded_ints else None,
                              object_pairs_hook=object_pairs_hook)
    except RecursionError:
        raise JSONLimitError(f"{_position(data, _too_deep_at(data))}: nested deeper than "
                             f"{MAX_DEPTH} levels") from None
    except JSONLimitError as exc:
        raise JSONLimitError(f"{_position(data, _long_int_at(data))}: {exc}, expected at most "
                             f"{MAX_INT_DIGITS} digits") from None
@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cycle collector while building many acyclic objects (JSON records, rows).

    Its full passes rescan every container already built, which on a 300k-record split
    doubles the time spent, and such objects never form cycles for it to find.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def refuse_device(path: Path) -> None:
    """Fail on a character or block device named as a data file (a link to /dev/zero).

    Reading one never ends, or ends in an out-of-memory kill. FIFOs stay readable: they are
    how a shell passes `<(command)`.

    Raises:
        DataError: ``path`` is a device.
    """
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # absent or unreadable: the read itself says so
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        raise DataError(f"{path}: is a device, not a file")


def not_utf8(data: bytes, offset: int, first_line: int = 1) -> str:
    """'line:column: ...' for the byte at ``offset`` of ``data`` that is not UTF-8 (the column
    counts characters; ``data`` starts at line ``first_line``)."""
    start = data.rfind(b"\n", 0, offset) + 1
    line = first_line + data.count(b"\n", 0, offset)
    column = len(data[start:offset].decode("utf-8", "replace")) + 1
    return f"{line}:{column}: byte 0x{data[offset]:02x} is not UTF-8; expected UTF-8 text"


def not_found(path: Path, expected: str) -> DataError:
    """The error for an input file that is absent; ``expected`` says what it should be."""
    return DataError(f"{path}: file not found: expected {expected}")


def read_json(path: Path, expected: str) -> Any:
    """The parsed content of a JSON file; ``expected`` names the file in the not-found message.

    Raises:
        DataError: the file is absent, a device, unreadable or not JSON.
    """
    refuse_device(path)
    try:
        with paused_gc():
            return decode_json(path.read_bytes())
    except FileNotFoundError:
        raise not_found(path, expected) from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder: expected {expected}") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    except JSONLimitError as exc:
        raise DataError(f"{path}:{exc}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}:{not_utf8(exc.object, exc.start)}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
