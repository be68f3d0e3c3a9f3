"""Find and read the members of a zip archive whose central directory is lost.

A truncated ``scene_graph.zip`` (an interrupted download) has no central
directory, so ``zipfile`` cannot open it. Its members can still be found from
the front by walking their local headers, up to the first damage; each is read
at its offset and checked against its CRC, as ``zipfile`` would.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO, NamedTuple

__all__ = ["Salvaged", "read_member", "salvage"]

_LOCAL_HEADER = struct.Struct("<4s2xHH4xIIIHH")
_LOCAL_SIGNATURE = b"PK\x03\x04"
_CENTRAL_SIGNATURE = b"PK\x01\x02"


class Salvaged(NamedTuple):
    """A zip member found by walking local headers: where its data is and how to check it."""

    offset: int
    size: int
    method: int
    crc: int


class _Damage(Exception):
    """The local-header walk of a damaged zip cannot go further: (member, reason)."""


def salvage(path: Path) -> tuple[dict[str, Salvaged], list[tuple[str, str]]]:
    """Find the intact members of a zip whose central directory is lost, from the front."""
    found: dict[str, Salvaged] = {}
    file_size = path.stat().st_size
    offset = 0
    with path.open("rb") as handle:
        try:
            while (member := _local_member(handle, offset, file_size)) is not None:
                name, entry = member
                found[name] = entry
                offset = entry.offset + entry.size
        except _Damage as damage:
            return found, [damage.args]
    return found, []


def _local_member(handle: BinaryIO, offset: int, file_size: int) -> tuple[str, Salvaged] | None:
    """The member whose local header starts at ``offset``; None at the central directory."""
    handle.seek(offset)
    header = handle.read(_LOCAL_HEADER.size)
    if header[:4] == _CENTRAL_SIGNATURE:
        return None
    if len(header) < _LOCAL_HEADER.size or header[:4] != _LOCAL_SIGNATURE:
        raise _Damage(f"<byte {offset}>", f"no zip member header at byte {offset} of {file_size}: "
                      f"the archive is truncated or corrupt from here on")
    _, flags, method, crc, size, _, name_length, extra_length = _LOCAL_HEADER.unpack(header)
    # A header cut by truncation may end inside a UTF-8 sequence; the name is only reported.
    name = handle.read(name_length).decode("utf-8" if flags & 0x800 else "cp437", "replace")
    extra = handle.read(extra_length)
    if flags & 0x8:
        raise _Damage(name, "its sizes are in a data descriptor, so neither it nor later "
                            "members can be found without the central directory")
    if size == 0xFFFFFFFF:
        size = _zip64_size(name, extra)
    start = offset + _LOCAL_HEADER.size + name_length + extra_length
    if start + size > file_size:
        raise _Damage(name, f"truncated: its data ends at byte {start + size}, "
                            f"the file has {file_size} bytes")
    return name, Salvaged(start, size, method, crc)


def _zip64_size(name: str, extra: bytes) -> int:
    position = 0
    while position + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, position)
        # A local zip64 field holds the uncompressed size, then the compressed one.
        if tag == 0x0001 and length >= 16:
            return int(struct.unpack_from("<Q", extra, position + 12)[0])
        position += 4 + length
    raise _Damage(name, "local header announces zip64 sizes but has no zip64 field")


def read_member(handle: BinaryIO, name: str, entry: Salvaged, max_size: int) -> bytes:
    """The uncompressed bytes of a salvaged member.

    Raises:
        zlib.error: the data does not inflate.
        ValueError: an unsupported compression method, a CRC mismatch, or more than
            ``max_size`` bytes (a local header's sizes are not to be trusted).
    """
    if entry.size > max_size:  # stored, or compressed beyond any legitimate member
        raise ValueError(f"more than {max_size} bytes")
    handle.seek(entry.offset)
    raw = handle.read(entry.size)
    if entry.method == zipfile.ZIP_STORED:
        data = raw
    elif entry.method == zipfile.ZIP_DEFLATED:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        data = inflater.decompress(raw, max_size + 1)
        if len(data) <= max_size and not inflater.eof:  # what zlib.decompress refused itself
            raise zlib.error("incomplete or truncated stream")
    else:
        raise ValueError(f"compression method {entry.method} is not supported without "
                         f"the central directory")
    if len(data) > max_size:
        raise ValueError(f"more than {max_size} bytes uncompressed")
    if zlib.crc32(data) != entry.crc:
        raise ValueError(f"Bad CRC-32 for file {name!r}")
    return data
