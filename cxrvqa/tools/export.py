"""Export a build as Parquet files or as a Hugging Face ``datasets`` folder.

Each built split becomes one table that keeps every field of its records, in
the order of pipeline.md §6, plus ``answer_multihot``: a fixed-size int8 list
over ``ans2idx.json`` (position i is 1 when the answer holds the answer whose
index is i). ``ans2idx.json`` is copied beside the tables so that the column
can be read back. ``template_arguments`` is a struct of five string lists:
``{"object": {"0": a, "1": b}, ...}`` becomes ``{"object": [a, b], ...}``,
because the keys are always the placeholder numbers in order.

pyarrow (a dependency of cxrvqa) and datasets (optional: the ``export`` extra,
for ``--format hf`` only) are imported on use, so the rest of cxrvqa works
without datasets.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cxrvqa.build.commit import (
    check_output_dir,
    naming_os_errors,
    remove_stale,
    settle,
    stage_name,
    sync_tree,
)
from cxrvqa.build.jsonio import paused_gc
from cxrvqa.build.output import OUTPUT_KEYS, ans2idx_bytes, folder_mode
from cxrvqa.errors import DataError, ExportError
from cxrvqa.tools.evaluate import default_vocabulary
from cxrvqa.tools.verify import read_ans2idx, read_records, text_table
from cxrvqa.vocab import ARGUMENT_KINDS, SPLITS

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["FORMATS", "MULTIHOT_COLUMN", "ExportError", "ExportReport",
           "export_dataset"]

FORMATS = ("parquet", "hf")
MULTIHOT_COLUMN = "answer_multihot"
_KEY_SET = set(OUTPUT_KEYS)
_KIND_SET = set(ARGUMENT_KINDS)
_NEEDS = {"parquet": ("pyarrow", "pyarrow.parquet"), "hf": ("pyarrow", "datasets")}
_EXPECTED = {
    "idx": "an integer that fits in 64 bits",
    "answer": "a list of strings",
    "template_arguments": f"an object with {', '.join(ARGUMENT_KINDS)}, each mapping "
                          f"'0', '1', … to strings",
}
_DESCRIPTION = ("MIMIC-CXR-VQA rebuilt by cxrvqa. answer_multihot[i] is 1 when answer holds the "
                "answer that ans2idx.json maps to i; template_arguments lists each kind's values "
                "in placeholder order.")



@dataclass(frozen=True)
class ExportReport:
    """Records read per split and rows found on reading the export back; ``ok`` if they agree."""

    out: Path
    fmt: str
    records: dict[str, int]
    exported: dict[str, int]

    @property
    def ok(self) -> bool:
        return self.records == self.exported

    def render(self) -> str:
        rows: list[tuple[object, ...]] = [("split", "records", "exported")]
        rows += [(split, count, self.exported.get(split, "-"))
                 for split, count in self.records.items()]
        return f"{self.fmt} export: {self.out}\n{text_table(rows)}"


def _require(name: str) -> None:
    try:
        importlib.import_module(name)
    except ImportError:
        raise ExportError(f"{name} is not installed; install the export extra: "
                          f"pip install 'cxrvqa[export]'") from None


# --- records to tables ---------------------------------------------------------------------

def _argument_lists(value: Any) -> dict[str, list[str]] | None:
    """template_arguments as lists in placeholder order, or None if not in the built shape."""
    if type(value) is not dict or value.keys() != _KIND_SET:
        return None
    lists = {}
    for kind in ARGUMENT_KINDS:
        slots = value[kind]
        if type(slots) is not dict or not _is_strings(names := list(slots.values())):
            return None
        # Keys must be "0", "1", … in order for the list to restore them exactly.
        if slots and list(slots) != [str(number) for number in range(len(slots))]:
            return None
        lists[kind] = names
    return lists


def _is_strings(value: Any) -> bool:
    return type(value) is list and all(type(item) is str for item in value)


def _row(record: dict[str, Any], path: Path, number: int) -> dict[str, Any]:
    """A record in table form; a record that would not round-trip is a DataError."""
    arguments = _argument_lists(record.get("template_arguments"))
    problem: str | None
    if record.keys() != _KEY_SET:
        problem = f"expected exactly the keys {', '.join(OUTPUT_KEYS)}"
    else:
        valid = {"idx": type(record["idx"]) is int and -2**63 <= record["idx"] < 2**63,
                 "answer": _is_strings(record["answer"]),
                 "template_arguments": arguments is not None}
        bad = next((key for key in OUTPUT_KEYS if not valid.get(key, type(record[key]) is str)),
                   None)
        problem = bad and f"{bad}: expected {_EXPECTED.get(bad, 'a string')}"
    if problem:
        raise DataError(f"{_label(path, number, record)}: {problem}")
    return {**record, "template_arguments": arguments}


def _label(path: Path, number: int, record: dict[str, Any]) -> str:
    return f"{path}: record {number} (idx {record.get('idx')!r})"


def _multihot(path: Path, records: list[dict[str, Any]], ans2idx: dict[str, int]) -> pa.Array:
    """One fixed-size int8 list per record, built in one flat buffer to stay fast on 300k rows."""
    import pyarrow as pa

    width = len(ans2idx)
    flat = bytearray(len(records) * width)
    for number, record in enumerate(records):
        for answer in record["answer"]:
            if answer not in ans2idx:
                raise DataError(f"{_label(path, number, record)}: answer {answer!r} is not in "
                                f"ans2idx.json")
            flat[number * width + ans2idx[answer]] = 1
    values = pa.Array.from_buffers(pa.int8(), len(flat), [None, pa.py_buffer(flat)])
    return pa.FixedSizeListArray.from_arrays(values, width)


def _schema(width: int) -> pa.Schema:
    import pyarrow as pa

    strings = pa.list_(pa.string())
    types = {key: pa.string() for key in OUTPUT_KEYS}
    types |= {"idx": pa.int64(), "answer": strings,
              "template_arguments": pa.struct([(kind, strings) for kind in ARGUMENT_KINDS])}
    return pa.schema([(key, types[key]) for key in OUTPUT_KEYS]
                     + [(MULTIHOT_COLUMN, pa.list_(pa.int8(), width))])


def _vocabulary(path: Path, records: dict[str, list[dict[str, Any]]]
                ) -> tuple[dict[str, int], bytes]:
    """The build's ``ans2idx.json``, as a mapping and as the bytes to copy; without one
    (``generate --complete`` writes a split file alone) the one a build of these records
    writes: the default answers and theirs."""
    if path.exists():
        return read_ans2idx(path), path.read_bytes()  # checked, then copied as it is
    others = {answer for split in records.values() for record in split
              if isinstance(record.get("answer"), list)
              for answer in record["answer"] if isinstance(answer, str)}
    data = ans2idx_bytes(default_vocabulary(others))
    return json.loads(data), data


def _split_table(path: Path, records: list[dict[str, Any]], ans2idx: dict[str, int]) -> pa.Table:
    import pyarrow as pa

    with paused_gc():
        rows = [_row(record, path, number) for number, record in enumerate(records)]
    schema = _schema(len(ans2idx))
    try:
        table = pa.Table.from_pylist(rows, schema=schema.remove(len(OUTPUT_KEYS)))
    except UnicodeEncodeError:
        raise _not_utf8(path, records) from None
    return table.append_column(schema.field(MULTIHOT_COLUMN), _multihot(path, records, ans2idx))


def _not_utf8(path: Path, records: list[dict[str, Any]]) -> DataError:
    """The error for the first record holding a string UTF-8 cannot hold (Arrow's strings are
    UTF-8): a lone surrogate, which JSON's \\ud800 escape can spell and a build copies."""
    for number, record in enumerate(records):
        for key in OUTPUT_KEYS:
            try:
                json.dumps(record[key], ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError as exc:
                return DataError(f"{_label(path, number, record)}: {key}: holds "
                                 f"{exc.object[exc.start:exc.end]!r}, a lone surrogate; "
                                 f"expected text that UTF-8 can hold")
    return DataError(f"{path}: a string cannot be written as UTF-8")  # not reached: one failed


# --- writers -------------------------------------------------------------------------------

def _write_parquet(tables: dict[str, pa.Table], folder: Path) -> None:
    import pyarrow.parquet as pq

    for split, table in tables.items():
        pq.write_table(table, folder / f"{split}.parquet")


def _write_hf(tables: dict[str, pa.Table], folder: Path) -> None:
    import datasets

    info = datasets.DatasetInfo(description=_DESCRIPTION)
    splits = datasets.DatasetDict({
        split: datasets.Dataset(table, info=info, split=datasets.NamedSplit(split))
        for split, table in tables.items()})
    # The library stays quiet by default; datasets' switch is global, so restore it after.
    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    # datasets writes as many shards as rows up to its size rule, so an empty split (a small
    # build's train.json is []) would get no shard and not load back: give it one.
    shards = {split: 1 if table.num_rows == 0 else None for split, table in tables.items()}
    try:
        splits.save_to_disk(str(folder), num_shards=shards)
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def _count_rows(out: Path, fmt: str, splits: list[str]) -> dict[str, int]:
    """Rows per split as a reader of the export sees them."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return {split: pq.read_metadata(out / f"{split}.parquet").num_rows for split in splits}
    import datasets

    loaded = datasets.load_from_disk(str(out))
    return {split: loaded[split].num_rows for split in splits}


def _target(out: Path) -> Path:
    """The folder the export replaces: a link's target (output folders on a larger disk
    are often links), never the link itself."""
    if not out.is_symlink():
        return out
    try:
        return out.resolve(strict=True)
    except (OSError, RuntimeError):  # RuntimeError: a loop, up to Python 3.12
        raise ExportError(f"{out}: is a link to nowhere (dangling, or a loop); choose a new "
                          f"output folder") from None


def _stage(out: Path) -> Path:
    """A temporary sibling of ``out``, renamed onto it once complete (all or nothing).

    Its name follows ``cxrvqa.build.commit``'s temporary pattern, so the next run removes it
    if this one is killed.
    """
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise _in_the_way(out)
    check_output_dir(out.parent)
    remove_stale(out.parent)
    staging = out.parent / stage_name(out.name)
    staging.mkdir()
    os.chmod(staging, folder_mode())  # the published folder follows the umask, as mkdir would
    return staging


def _in_the_way(out: Path) -> ExportError:
    return ExportError(f"{out}: exists and is not an empty folder; choose a new output folder")


def _publish(staging: Path, out: Path) -> None:
    # One rename publishes the whole folder; its files are on disk before it.
    sync_tree(staging)
    try:
        if out.is_dir():
            out.rmdir()  # empty, as _stage checked; a rename onto a folder is not portable
        os.replace(staging, out)
    except OSError as exc:  # another export published there since _stage looked
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise _in_the_way(out) from None
        raise


def export_dataset(dataset_dir: Path, out: Path, fmt: str) -> ExportReport:
    """Write the built splits of ``dataset_dir`` to a new folder ``out``.

    Args:
        dataset_dir: the folder with the built train/valid/test.json and ans2idx.json; the
            splits present are exported.
        out: a folder that does not exist yet or is empty.
        fmt: ``"parquet"`` for ``<split>.parquet`` files, ``"hf"`` for a folder that
            ``datasets.load_from_disk`` opens as a ``DatasetDict``.

    Returns:
        Records read and rows read back, per split.

    Raises:
        ExportError: pyarrow or datasets is missing, or ``out`` is in the way.
        DataError: a built file is absent or not in the built shape.

    Example:
        >>> export_dataset(Path("mimiccxrvqa/dataset"), Path("export"), "hf").ok  # doctest: +SKIP
        True
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, not {fmt!r}")
    for module in _NEEDS[fmt]:
        _require(module)
    settle(dataset_dir)
    present = [split for split in SPLITS if (dataset_dir / f"{split}.json").is_file()]
    if not present:
        names = ", ".join(f"{split}.json" for split in SPLITS)
        raise DataError(f"{dataset_dir}: no built split files ({names}); run cxrvqa build first")
    target = _target(out)
    staging = _stage(target)
    try:
        records = {split: read_records(dataset_dir / f"{split}.json") for split in present}
        ans2idx, vocabulary = _vocabulary(dataset_dir / "ans2idx.json", records)
        tables = {split: _split_table(dataset_dir / f"{split}.json", records[split], ans2idx)
                  for split in present}
        with naming_os_errors(target):  # a full disk's error names no file
            (_write_parquet if fmt == "parquet" else _write_hf)(tables, staging)
            (staging / "ans2idx.json").write_bytes(vocabulary)
            _publish(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportReport(out, fmt, {split: table.num_rows for split, table in tables.items()},
                        _count_rows(out, fmt, present))
