"""Read JSON files with one-line errors, and pause the cycle collector around bulk object building."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cxrvqa.errors import DataError

__all__ = ["paused_gc", "read_json"]


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


def read_json(path: Path, expected: str) -> Any:
    """The parsed content of a JSON file; ``expected`` names the file in the not-found message.

    Raises:
        DataError: the file is absent, unreadable or not JSON.
    """
    try:
        with paused_gc():
            return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise DataError(f"{path}: file not found: expected {expected}") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
