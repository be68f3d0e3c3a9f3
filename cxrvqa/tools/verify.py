"""Check a build: its files against a SHA256SUMS list, and its records against another build.

``verify_checksums`` answers "are my files the published ones?" byte for byte.
When they are not, ``compare_datasets`` answers "where do they differ?" by
pairing the records of two dataset folders on ``idx`` and naming the keys that
differ, so a mismatch can be traced to the templates that produce it.

Example:
    >>> report = verify_checksums(Path("mimiccxrvqa/dataset"), None)  # doctest: +SKIP
    >>> print(report.render())                                        # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from cxrvqa.build import layout
from cxrvqa.build.commit import MANIFEST, read_manifest, settle
from cxrvqa.build.jsonio import not_found, not_utf8, paused_gc, read_json, refuse_device
from cxrvqa.build.layout import ANS2IDX_FILE
from cxrvqa.build.output import write_files_atomically
from cxrvqa.errors import DataError
from cxrvqa.vocab import SPLITS

__all__ = ["BUILT_FILES", "CHECKSUMS_FILE", "CompareReport", "FileCheck", "RecordDiff",
           "SplitComparison", "VerifyReport", "compare_datasets", "paused_gc", "read_json",
           "read_ans2idx", "read_records", "text_table", "verify_checksums", "verify_manifest",
           "write_checksums"]

CHECKSUMS_FILE = "SHA256SUMS.txt"
BUILT_FILES = (*layout.BUILT_FILES.values(), ANS2IDX_FILE)  # the splits, then ans2idx.json
# One space (PhysioNet), two spaces (sha256sum text mode) or " *" (binary mode).
_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *]?(\S.*)")
_SHOWN = 5


def text_table(rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [max(len(str(row[column])) for row in rows) for column in range(len(rows[0]))]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in rows)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- reading built files -------------------------------------------------------------------

def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a built split file, in file order.

    Raises:
        DataError: the file is absent, is not JSON, or is not a list of objects.
    """
    settle(path.parent)  # a commit a crash interrupted is finished: never a mixed set
    data = read_json(path, "a built split file")
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of records")
    for number, record in enumerate(data):
        if not isinstance(record, dict):
            raise DataError(f"{path}: record {number}: expected a JSON object")
    return data


def read_ans2idx(path: Path) -> dict[str, int]:
    """The answer vocabulary of a build: every answer mapped to a distinct index 0..n-1.

    Raises:
        DataError: the file is absent, not JSON, or not such a mapping (empty, say).
    """
    settle(path.parent)
    data = read_json(path, "the ans2idx.json of a build")
    if (not isinstance(data, dict) or not data or not all(type(v) is int for v in data.values())
            or sorted(data.values()) != list(range(len(data)))):
        raise DataError(f"{path}: expected an object mapping each answer to a distinct index "
                        f"0..n-1")
    return data


# --- checksums -----------------------------------------------------------------------------

@dataclass(frozen=True)
class FileCheck:
    """One listed built file: the digest the list expects and the one on disk (None if absent)."""

    path: str
    expected: str
    actual: str | None

    @property
    def status(self) -> str:
        if self.actual is None:
            return "missing"
        return "match" if self.actual == self.expected else "mismatch"


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of ``verify_checksums``; ``ok`` only when every listed built file matches."""

    checksums: Path
    files: tuple[FileCheck, ...]
    ignored: tuple[str, ...]
    strays: tuple[str, ...] = ()
    """Built files in the folder that the manifest does not list: left by an earlier build."""

    @property
    def ok(self) -> bool:
        return not self.strays and all(check.status == "match" for check in self.files)

    def render(self) -> str:
        rows: list[Sequence[object]] = [("status", "file", "expected", "actual")]
        rows += [(check.status, check.path, check.expected[:12], (check.actual or "-")[:12])
                 for check in self.files]
        lines = [f"checksums: {self.checksums}", text_table(rows)]
        if self.ignored:
            lines.append(f"not built by cxrvqa, not checked ({len(self.ignored)}): "
                         + ", ".join(self.ignored))
        if self.strays:
            lines.append(f"not written by the build this manifest records (left by an earlier "
                         f"one; rebuild every split to refresh them): {', '.join(self.strays)}")
        matched = sum(check.status == "match" for check in self.files)
        lines.append(f"{matched} of {len(self.files)} files match")
        return "\n".join(lines)


def _read_checksums(path: Path) -> list[tuple[str, str]]:
    """(lowercase digest, listed path) for each non-blank line of a SHA256SUMS file."""
    refuse_device(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # an editor's BOM is not part of line 1
    except FileNotFoundError:
        raise not_found(path, "a '<sha256> <relative path>' list (give one with --checksums "
                              "FILE)") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}:{not_utf8(exc.object, exc.start)}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _LINE.fullmatch(line.rstrip("\r"))
        if match is None:
            raise DataError(f"{path}: line {number}: expected '<sha256> <relative path>'")
        entries.append((match[1].lower(), match[2]))
    return entries


def verify_checksums(dataset_dir: Path, checksums: Path | None = None) -> VerifyReport:
    """Compare the SHA-256 of each built file with the digest a checksum list gives for it.

    A listed path counts by its file name, so both ``train.json`` and a release's
    ``dataset/train.json`` are looked up as ``dataset_dir/train.json``; listed files that
    cxrvqa does not build (README, question files) are reported as ignored.

    Args:
        dataset_dir: the folder holding train/valid/test.json and ans2idx.json.
        checksums: the list to check against; defaults to ``dataset_dir/SHA256SUMS.txt``.

    Returns:
        A report with match / mismatch / missing per listed built file.

    Raises:
        DataError: the list is absent, has a malformed line, names a built file twice or
            names none.
    """
    settle(dataset_dir)
    if checksums is None:
        checksums = dataset_dir / CHECKSUMS_FILE
    files: dict[str, FileCheck] = {}
    ignored = []
    for digest, listed in _read_checksums(checksums):
        name = PurePosixPath(listed.replace("\\", "/")).name
        if name not in BUILT_FILES:
            ignored.append(listed)
            continue
        if name in files:
            raise DataError(f"{checksums}: '{listed}': {name} is listed twice")
        path = dataset_dir / name
        files[name] = FileCheck(listed, digest, _sha256(path) if path.is_file() else None)
    if not files:
        raise DataError(f"{checksums}: no line names a built file ({', '.join(BUILT_FILES)})")
    return VerifyReport(checksums, tuple(files.values()), tuple(ignored))


def verify_manifest(dataset_dir: Path) -> VerifyReport | None:
    """Compare the built files with the manifest the last build wrote; None if there is none.

    A mismatch names a file that is not from the build the manifest records (a mixed set), and
    so does a built file the manifest does not list (``--splits test`` over an older full build
    leaves that build's train.json and valid.json beside the new test.json).
    """
    settle(dataset_dir)
    digests = read_manifest(dataset_dir)
    if digests is None:
        return None
    files = tuple(FileCheck(name, digest, _sha256(dataset_dir / name)
                            if (dataset_dir / name).is_file() else None)
                  for name, digest in sorted(digests.items()))
    strays = tuple(sorted(name for name in BUILT_FILES
                          if name not in digests and (dataset_dir / name).is_file()))
    return VerifyReport(dataset_dir / MANIFEST, files, (), strays)


def write_checksums(dataset_dir: Path) -> Path:
    """Write ``SHA256SUMS.txt`` for the built files present, PhysioNet style.

    Lines are ``<sha256> <file name>``, sorted by name, each ending in a newline.

    Raises:
        DataError: no built file is present.
    """
    present = sorted(name for name in BUILT_FILES if (dataset_dir / name).is_file())
    if not present:
        raise DataError(f"{dataset_dir}: no built files ({', '.join(BUILT_FILES)}) to checksum; "
                        f"run cxrvqa build first")
    text = "".join(f"{_sha256(dataset_dir / name)} {name}\n" for name in present)
    write_files_atomically(dataset_dir, {CHECKSUMS_FILE: text.encode("ascii")})
    return dataset_dir / CHECKSUMS_FILE


# --- record comparison ---------------------------------------------------------------------

@dataclass(frozen=True)
class RecordDiff:
    """A record present in both builds whose serialised form differs, and the keys at fault.

    ``keys`` is ``("<key order>",)`` when only the order of keys differs.
    """

    idx: int
    template_program: str
    keys: tuple[str, ...]


@dataclass(frozen=True)
class SplitComparison:
    """How one split of a build differs from the same split of another build."""

    split: str
    records: int
    other_records: int
    first: tuple[RecordDiff, ...]
    by_template: dict[str, int]
    missing: tuple[int, ...]
    extra: tuple[int, ...]
    order_differs: bool

    @property
    def differing(self) -> int:
        return sum(self.by_template.values())

    @property
    def ok(self) -> bool:
        return not (self.differing or self.missing or self.extra or self.order_differs)


@dataclass(frozen=True)
class CompareReport:
    """The outcome of ``compare_datasets``; ``ok`` only when every split agrees record by record."""

    dataset_dir: Path
    other_dir: Path
    splits: tuple[SplitComparison, ...]
    # Split files found in one folder only, not compared: (split, "ours" or "other").
    unpaired: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        return all(split.ok for split in self.splits) and not self.unpaired

    def render(self) -> str:
        rows: list[Sequence[object]] = [("split", "ours", "other", "differing", "missing", "extra",
                                         "order")]
        rows += [(s.split, s.records, s.other_records, s.differing, len(s.missing), len(s.extra),
                  "differs" if s.order_differs else "same") for s in self.splits]
        lines = [f"ours: {self.dataset_dir}", f"other: {self.other_dir}", text_table(rows)]
        lines += [f"{split}: only in {where}, not compared" for split, where in self.unpaired]
        for split in self.splits:
            lines += _split_details(split)
        return "\n".join(lines)


def _preview(values: Iterable[int]) -> str:
    shown = list(values)
    return ", ".join(map(str, shown[:_SHOWN])) + (", …" if len(shown) > _SHOWN else "")


def _split_details(split: SplitComparison) -> list[str]:
    lines = []
    if split.first:
        lines.append(f"{split.split}: first differing records")
        lines += [f"  idx {diff.idx} ({diff.template_program}): {', '.join(diff.keys)}"
                  for diff in split.first]
        lines.append(f"{split.split}: differing records per template_program")
        lines.append(text_table([(f"  {template}", count)
                             for template, count in sorted(split.by_template.items())]))
    if split.missing:
        lines.append(f"{split.split}: missing from ours: idx {_preview(split.missing)}")
    if split.extra:
        lines.append(f"{split.split}: not in other: idx {_preview(split.extra)}")
    return lines


def _by_idx(path: Path) -> dict[tuple[int, int], dict[str, Any]]:
    """Records keyed by (idx, how many earlier records share that idx), in file order.

    The second part pairs repeated idx values by occurrence instead of failing, since the
    released files only promise that idx is "a number indicating its instance index".
    """
    keyed: dict[tuple[int, int], dict[str, Any]] = {}
    seen: Counter[int] = Counter()
    for number, record in enumerate(read_records(path)):
        idx = record.get("idx")
        if type(idx) is not int:
            raise DataError(f"{path}: record {number}: expected an integer idx")
        keyed[idx, seen[idx]] = record
        seen[idx] += 1
    return keyed


def _differing_keys(ours: dict[str, Any], other: dict[str, Any]) -> tuple[str, ...]:
    # json.dumps, not ==, so that 1 vs 1.0 vs true and nested key order count as differences,
    # as they do in the bytes.
    keys = list(ours) + [key for key in other if key not in ours]
    differing = tuple(key for key in keys if key not in ours or key not in other
                      or json.dumps(ours[key]) != json.dumps(other[key]))
    return differing or ("<key order>",)


def _compare_split(split: str, ours_path: Path, other_path: Path, limit: int) -> SplitComparison:
    ours, other = _by_idx(ours_path), _by_idx(other_path)
    first: list[RecordDiff] = []
    by_template: Counter[str] = Counter()
    for key, record in ours.items():
        if key in other and json.dumps(record) != json.dumps(other[key]):
            template = str(record.get("template_program", other[key].get("template_program")))
            by_template[template] += 1
            if len(first) < limit:
                first.append(RecordDiff(key[0], template, _differing_keys(record, other[key])))
    shared_order = [key for key in ours if key in other]
    return SplitComparison(
        split=split, records=len(ours), other_records=len(other), first=tuple(first),
        by_template=dict(by_template),
        missing=tuple(key[0] for key in other if key not in ours),
        extra=tuple(key[0] for key in ours if key not in other),
        order_differs=shared_order != [key for key in other if key in ours])


def compare_datasets(dataset_dir: Path, other_dir: Path, splits: Sequence[str] = SPLITS, *,
                     limit: int = _SHOWN) -> CompareReport:
    """Pair the records of two dataset folders on ``idx`` and report where they differ.

    Args:
        dataset_dir: our build (the folder with train/valid/test.json).
        other_dir: the build to compare with, e.g. the published files.
        splits: which split files to compare.
        limit: how many differing records to keep per split for display.

    Returns:
        Per split: the first ``limit`` differing records with their differing keys, the
        number of differing records per template_program, the idx of records only in the
        other build (missing) or only in ours (extra), and whether the record order differs.

        A split file in one folder only is named as unpaired (a difference); one in neither
        folder is left out, so a ``--splits`` build compares with another of the same splits.

    Raises:
        DataError: no split file is in both folders, one is malformed, or a record lacks an
            integer idx.
    """
    settle(dataset_dir)
    settle(other_dir)  # an interrupted commit is finished before its files are looked for
    paired, unpaired = [], []
    for split in splits:
        ours, other = dataset_dir / f"{split}.json", other_dir / f"{split}.json"
        if ours.exists() and other.exists():
            paired.append(_compare_split(split, ours, other, limit))
        elif ours.exists() or other.exists():
            unpaired.append((split, "ours" if ours.exists() else "other"))
    if not paired:
        names = ", ".join(f"{split}.json" for split in splits)
        raise DataError(f"{dataset_dir} and {other_dir}: no split file in both folders "
                        f"(looked for {names})")
    return CompareReport(dataset_dir, other_dir, tuple(paired), tuple(unpaired))
