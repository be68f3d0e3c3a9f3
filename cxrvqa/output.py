"""Write dataset files atomically, in the exact bytes of the published builder.

JSON is written by Python's ``json`` with ``indent=4``, default separators and
ASCII escaping, without a trailing newline; ``ans2idx.json`` is one line with
sorted keys. All files of a build are staged as temporary files and renamed
only once every one of them is complete.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["dataset_bytes", "ans2idx_bytes", "write_files_atomically"]


def dataset_bytes(records: list[dict[str, Any]]) -> bytes:
    """A split file's bytes."""
    return json.dumps(records, indent=4).encode("ascii")


def ans2idx_bytes(answers: list[str]) -> bytes:
    """The answer-to-index map over the sorted answers."""
    return json.dumps({answer: index for index, answer in enumerate(sorted(answers))}).encode("ascii")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_files_atomically(directory: Path, files: Mapping[str, bytes]) -> None:
    """Write every file or none: stage all as temporaries, then rename each into place."""
    directory.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[str, Path]] = []
    try:
        for name, data in files.items():
            handle, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
            staged.append((name, Path(temp)))
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
            os.chmod(temp, 0o666 & ~_umask())
        for name, temp in staged:
            os.replace(temp, directory / name)
    finally:
        for _name, temp in staged:
            temp.unlink(missing_ok=True)
