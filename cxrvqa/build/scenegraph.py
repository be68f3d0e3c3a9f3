"""Read Chest ImaGenome scene graphs into the two ``scene_tabular`` tables (and write them as TSV).

The published builder needs ``silver_dataset/scene_tabular/attribute_relations_tabular.txt`` and
``bbox_objects_tabular.txt``, which only a credentialed post-processing script produces. This
module derives the same rows from the scene graphs themselves (source-formats.md §3.1-§3.3,
§3.7), reading ``silver_dataset/scene_graph.zip`` member by member or an extracted ``scene_graph/``
folder, in parallel worker processes.

Rows:
    * one label row per ``attributes[]`` entry x phrase ``k`` x ``"category|yes/no|label"`` string
      of ``attributes[k]``: row_id = ``phrase_IDs[k]``, sent_loc = its last ``|`` token,
      bbox = the entry's ``bbox_name``, relation = 1 for ``yes`` else 0, context = ``yes``/``no``;
    * one box row per ``objects[]`` entry, its 16 keys as columns (``synsets`` as a list repr).
Both are ordered by scene-graph file name, then entry, phrase and label order.

Columns are ``ATTRIBUTE_COLUMNS`` and ``BOX_COLUMNS`` (file order), or the subset a caller
asks for, with the dtypes of ``ATTRIBUTE_DTYPES`` and ``BOX_DTYPES`` (text columns the caller
names are categoricals instead); box coordinates are int64 when every value is an integer, else
float64. The frames equal what a reader of the written TSVs gets with::

    pd.read_csv(path, sep="\\t", dtype=BOX_DTYPES, keep_default_na=False)

(``keep_default_na=False`` keeps strings such as ``NA`` as text; numeric cells are never empty.
Workers format their own rows, so a coordinate column mixing integers and fractions may hold both
``25`` and ``25.5``; it reads back as the same float64 column.)
"""

from __future__ import annotations

import math
import os
import reprlib
import zipfile
import zlib
from collections.abc import Collection, Iterator, Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

import msgspec
import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from cxrvqa.build.commit import StagedFiles
from cxrvqa.build.jsonio import decode_json, paused_gc
from cxrvqa.build.layout import (
    GRAPH_SUFFIX,
    SCENE_GRAPH_ZIP,
    SCENE_TABULAR,
    SILVER_BOXES,
    SILVER_LABELS,
    SKIPPED_GRAPHS,
    SceneGraphSource,
    find_scene_graphs,
    is_graph_name,
)
from cxrvqa.build.stages import ignore_interrupt, process_pool, progress_bar
from cxrvqa.build.zipsalvage import Salvaged, read_member, salvage
from cxrvqa.errors import DataError, printable

__all__ = [
    "ATTRIBUTES_FILE",
    "ATTRIBUTE_COLUMNS",
    "ATTRIBUTE_DTYPES",
    "BOXES_FILE",
    "BOX_COLUMNS",
    "BOX_DTYPES",
    "GRAPH_SUFFIX",
    "ScanResult",
    "SceneGraphSource",
    "find_scene_graphs",
    "read_scene_graphs",
    "write_scene_tabular",
]

ATTRIBUTE_COLUMNS: tuple[str, ...] = (
    "study_id", "image_id", "row_id", "sent_loc", "bbox", "categoryID", "label_name", "relation",
    "context")
"""Columns of attribute_relations_tabular.txt, in file order."""

ATTRIBUTE_DTYPES: dict[str, str] = {
    "study_id": "int64", "image_id": "str", "row_id": "str", "sent_loc": "int64", "bbox": "str",
    "categoryID": "str", "label_name": "str", "relation": "int64", "context": "str"}
"""dtype of every attribute column (``pd.read_csv(dtype=...)``)."""

BOX_COLUMNS: tuple[str, ...] = (
    "object_id", "x1", "y1", "x2", "y2", "width", "height", "bbox_name", "synsets", "name",
    "original_x1", "original_y1", "original_x2", "original_y2", "original_width",
    "original_height")
"""Columns of bbox_objects_tabular.txt, in file order."""

BOX_DTYPES: dict[str, str] = {
    "object_id": "str", "bbox_name": "str", "synsets": "str", "name": "str"}
"""dtype of the text box columns; the numeric ones are inferred: int64, or float64 if any
value is fractional (a dtype of None would mean float64 to ``read_csv``)."""

ATTRIBUTES_FILE = PurePosixPath(SILVER_LABELS).name
BOXES_FILE = PurePosixPath(SILVER_BOXES).name
SKIPPED_FILE = PurePosixPath(SKIPPED_GRAPHS).name

MAX_GRAPH_BYTES = 64 << 20
"""Largest scene graph read (a real one is a few hundred KB): a bigger member, say a zip bomb's,
is a bad graph instead of an out-of-memory end."""
# Files per task: big enough that IPC and DataFrame overhead vanish, small enough that every
# worker gets several tasks even on small inputs.
_CHUNK_FILES = 256
_TASKS_PER_WORKER = 4

_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "an integer",
               float: "a number", bool: "a boolean", type(None): "null"}
_NUMBER = (int, float)
_NUMBER_TYPES = frozenset(_NUMBER)
_LIMIT = 2**53  # exact in a float64 column; beyond it (and for NaN or inf) a box is refused
_STRING_TYPE = frozenset({str})
_RELATION = {"yes": 1, "no": 0}
_BOX_KINDS: Mapping[str, tuple[type, ...]] = MappingProxyType({
    name: (list,) if name == "synsets" else (str,) if name in BOX_DTYPES else _NUMBER
    for name in BOX_COLUMNS})
_BOX_VALUES = itemgetter(*BOX_COLUMNS)
_BOX_NUMBERS = itemgetter(*(i for i, kinds in enumerate(_BOX_KINDS.values()) if kinds is _NUMBER))
_BOX_TEXTS = itemgetter(*(i for i, kinds in enumerate(_BOX_KINDS.values()) if kinds == (str,)))
_SYNSETS_AT = list(BOX_COLUMNS).index("synsets")

_ZIP_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError,
                    RuntimeError, UnicodeDecodeError, KeyError)
# What zipfile raises on a central directory it cannot use: besides BadZipFile, an entry that
# asks for a newer zip version, or a name flagged UTF-8 that is not.
_ZIP_DIRECTORY_ERRORS = (zipfile.BadZipFile, NotImplementedError, UnicodeDecodeError)
# Error messages quote the offending value, shortened only when it is really long.
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 120


@dataclass(frozen=True, eq=False)
class ScanResult:
    """The two tables read from scene graphs.

    Attributes:
        attributes: label rows; columns ``ATTRIBUTE_COLUMNS`` or the ones asked for, dtypes
            ``ATTRIBUTE_DTYPES``. With no columns asked for, the frame still has one index
            entry per row.
        boxes: box rows; columns ``BOX_COLUMNS`` or the ones asked for, dtypes ``BOX_DTYPES``
            (coordinates numeric).
        files: scene graphs read.
        skipped: ``(member, what is wrong)`` for each graph or archive part left out
            (only with ``skip_bad=True``).
    """

    attributes: pd.DataFrame
    boxes: pd.DataFrame
    files: int
    skipped: list[tuple[str, str]]


def read_scene_graphs(
    source: SceneGraphSource,
    *,
    attribute_columns: Sequence[str] | None = None,
    box_columns: Sequence[str] | None = None,
    categorical: Collection[str] = (),
    skip_bad: bool = False,
    progress: bool = False,
    workers: int | None = None,
) -> ScanResult:
    """Derive the label and box tables from every scene graph of ``source``.

    Args:
        source: from ``find_scene_graphs``.
        attribute_columns: the label columns to return, in this order; default all of
            ``ATTRIBUTE_COLUMNS``. Workers drop the others before sending their rows, so
            the tables never exist in full: fewer columns, lower peak memory.
        box_columns: likewise for the box table; default all of ``BOX_COLUMNS``.
        categorical: text columns (of either table) to return as pandas categoricals with
            sorted categories instead of ``str``: each distinct string is then held once, and
            workers send these columns coded. Same values, a fraction of the memory for
            repeated strings (``image_id``, ``bbox``, ``label_name``, ...).
        skip_bad: leave out unreadable or malformed graphs (and, for a zip whose central
            directory is lost, read the members before the damage) instead of raising.
        progress: show a tqdm bar on stderr.
        workers: processes parsing JSON; default ``os.cpu_count()``.

    Raises:
        DataError: one line naming the archive member or file and what is wrong.
        ValueError: a column name that is not one of the table's, or a categorical one that
            is not a text column.
    """
    kept = _Kept.of(attribute_columns, box_columns, categorical)
    return _read(source, kept, skip_bad, progress, workers)


def write_scene_tabular(
    chest_imagenome_dir: Path | str,
    *,
    attribute_columns: Sequence[str] | None = None,
    box_columns: Sequence[str] | None = None,
    skip_bad: bool = False,
    progress: bool = False,
    workers: int | None = None,
) -> ScanResult:
    """Write ``silver_dataset/scene_tabular/{attribute_relations,bbox_objects}_tabular.txt``.

    Both files are written completely to temporary files first and then renamed over the
    targets, so a failure never leaves a partial table behind. Graphs skipped with
    ``skip_bad`` are listed in ``skipped_scene_graphs.txt`` beside them (committed with the
    tables; removed by a run that skips none), so that a build from these tables says what
    they lack. Every column is written; the column arguments only choose what the returned
    frames keep (``()`` for row counts alone). Arguments as for ``read_scene_graphs``;
    returns what was read.
    """
    kept = _Kept.of(attribute_columns, box_columns)
    silver = (Path(chest_imagenome_dir) / SCENE_GRAPH_ZIP).parent
    source = find_scene_graphs(chest_imagenome_dir)
    if source is None:
        raise DataError(f"{silver}: scene_graph.zip or scene_graph/: expected Chest ImaGenome "
                        f"scene graphs (*{GRAPH_SUFFIX}), found neither")
    folder = Path(chest_imagenome_dir) / SCENE_TABULAR
    with _TabularWriter(folder, {ATTRIBUTES_FILE: ATTRIBUTE_COLUMNS,
                                 BOXES_FILE: BOX_COLUMNS}, SKIPPED_FILE) as writer:
        scan = _read(source, kept, skip_bad, progress, workers, writer)
        if scan.skipped:
            writer.add(SKIPPED_FILE, "".join(f"{printable(member)}\t{printable(reason)}\n"
                                             for member, reason in scan.skipped))
    if not scan.skipped:
        # Complete tables now: a list left from an earlier --skip-bad run would be untrue.
        (folder / SKIPPED_FILE).unlink(missing_ok=True)
    return scan


@dataclass(frozen=True)
class _Kept:
    """The columns each table keeps, in output order, and the dtype of each."""

    attributes: tuple[str, ...]
    boxes: tuple[str, ...]
    attribute_dtypes: Mapping[str, str]
    box_dtypes: Mapping[str, str]

    @classmethod
    def of(cls, attributes: Sequence[str] | None, boxes: Sequence[str] | None,
           categorical: Collection[str] = ()) -> _Kept:
        texts = [name for name, dtype in (ATTRIBUTE_DTYPES | BOX_DTYPES).items() if dtype == "str"]
        wrong = [name for name in categorical if name not in texts]
        if wrong:
            raise ValueError(f"categorical column(s) {', '.join(map(repr, wrong))} are not "
                             f"text columns; expected some of {', '.join(texts)}")
        return cls(_chosen("attribute", attributes, ATTRIBUTE_COLUMNS),
                   _chosen("box", boxes, BOX_COLUMNS),
                   _coded(ATTRIBUTE_DTYPES, categorical), _coded(BOX_DTYPES, categorical))


def _coded(dtypes: Mapping[str, str], categorical: Collection[str]) -> dict[str, str]:
    return {name: "category" if name in categorical else dtype for name, dtype in dtypes.items()}


def _chosen(table: str, chosen: Sequence[str] | None, columns: tuple[str, ...]
            ) -> tuple[str, ...]:
    if chosen is None:
        return columns
    unknown = [name for name in chosen if name not in columns]
    if unknown:
        raise ValueError(f"unknown {table} column(s) {', '.join(map(repr, unknown))}; "
                         f"expected some of {', '.join(columns)}")
    return tuple(chosen)


def _read(source: SceneGraphSource, kept: _Kept, skip_bad: bool, progress: bool,
          workers: int | None, writer: _TabularWriter | None = None) -> ScanResult:
    catalog, skipped = _catalog(source, skip_bad)
    workers = _worker_count(workers)
    attributes, boxes = _Parts(kept.attributes), _Parts(kept.boxes)
    files = 0
    task = _Task(catalog, skip_bad, kept, writer is not None)
    # The pool starts before the bar so that no tqdm thread is running when workers fork.
    with _scanning(task, workers) as pieces, progress_bar(
            total=len(catalog.names), enabled=progress, unit="graph", desc="scene graphs read"
            ) as bar:
        for piece in pieces:
            attributes.add(piece.attributes)
            boxes.add(piece.boxes)
            files += piece.files
            skipped.extend(piece.skipped)
            if writer is not None:
                writer.write(piece.texts)
            bar.update(piece.files + len(piece.skipped))
    return ScanResult(attributes.join(kept.attribute_dtypes), boxes.join(kept.box_dtypes), files,
                      skipped)


# --- locating members -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Catalog:
    """The graphs to read, in output order, and how to reach them."""

    source: SceneGraphSource
    names: tuple[str, ...]
    salvaged: Mapping[str, Salvaged] | None = None

    def where(self, name: str) -> str:
        if self.source.kind == "zip":
            return f"{self.source.path}: {name}"
        return str(self.source.path / name)


def _graph_order(names: Sequence[str]) -> tuple[str, ...]:
    # By file name first so that a zip and its extracted folder give the same row order.
    return tuple(sorted(set(filter(is_graph_name, names)),
                        key=lambda name: (name.rsplit("/", 1)[-1], name)))


def _catalog(source: SceneGraphSource, skip_bad: bool) -> tuple[_Catalog, list[tuple[str, str]]]:
    skipped: list[tuple[str, str]] = []
    if source.kind == "dir":
        catalog = _Catalog(source, _graph_order(_list_folder(source.path)))
    else:
        try:
            with zipfile.ZipFile(source.path) as archive:
                catalog = _Catalog(source, _graph_order(archive.namelist()))
        except _ZIP_DIRECTORY_ERRORS as exc:
            if not skip_bad:
                raise DataError(
                    f"{source.path}: central directory: not readable ({_one_line(exc)}), the zip "
                    f"is truncated or corrupt; download it again, or run `cxrvqa scene-tabular "
                    f"--skip-bad` to read the members before the damage") from None
            salvaged, skipped = salvage(source.path)
            catalog = _Catalog(source, _graph_order(list(salvaged)), salvaged)
        except OSError as exc:
            raise DataError(f"{source.path}: cannot open ({_one_line(exc)})") from None
    if not catalog.names and not skipped:
        raise DataError(f"{source.path}: expected *{GRAPH_SUFFIX} files, found none")
    return catalog, skipped


def _list_folder(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            return [entry.name for entry in entries if entry.is_file()]
    except OSError as exc:
        raise DataError(f"{folder}: cannot list the folder ({_one_line(exc)})") from None


# --- reading members ----------------------------------------------------------------------------


class _BadGraph(Exception):
    """One scene graph cannot be used; the message says where inside it and what is wrong."""


class _Reader(Protocol):
    """Reads one member's bytes, raising _BadGraph when it cannot."""

    def read(self, name: str) -> bytes: ...

    def close(self) -> None: ...


class _FolderReader:
    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def close(self) -> None:
        """Nothing is held open between files."""

    def read(self, name: str) -> bytes:
        try:
            _bounded((self._folder / name).stat().st_size)
            return (self._folder / name).read_bytes()
        except OSError as exc:
            raise _BadGraph(f"cannot read the file ({_one_line(exc)})") from None


class _ZipReader:
    def __init__(self, path: Path) -> None:
        self._archive = zipfile.ZipFile(path)

    def read(self, name: str) -> bytes:
        try:
            # zipfile stops at the size the directory gives (and fails the CRC if there is
            # more). KeyError: the archive was replaced since it was listed.
            _bounded(self._archive.getinfo(name).file_size)
            return self._archive.read(name)
        except _ZIP_READ_ERRORS as exc:
            raise _BadGraph(f"unreadable zip member ({_one_line(exc)})") from None

    def close(self) -> None:
        self._archive.close()


class _SalvageReader:
    """Reads members at the offsets ``zipsalvage.salvage`` found (CRC checked like zipfile)."""

    def __init__(self, path: Path, salvaged: Mapping[str, Salvaged]) -> None:
        self._handle = path.open("rb")
        self._salvaged = salvaged

    def read(self, name: str) -> bytes:
        try:
            return read_member(self._handle, name, self._salvaged[name], MAX_GRAPH_BYTES)
        except (zlib.error, ValueError) as exc:
            raise _BadGraph(f"unreadable zip member ({_one_line(exc)})") from None

    def close(self) -> None:
        self._handle.close()


def _bounded(size: int) -> None:
    if size > MAX_GRAPH_BYTES:
        raise _BadGraph(f"{size} bytes uncompressed; a scene graph has at most {MAX_GRAPH_BYTES}")


def _open_reader(catalog: _Catalog) -> _Reader:
    if catalog.source.kind == "dir":
        return _FolderReader(catalog.source.path)
    if catalog.salvaged is not None:
        return _SalvageReader(catalog.source.path, catalog.salvaged)
    return _ZipReader(catalog.source.path)


# --- scanning in chunks -------------------------------------------------------------------------


class _Table(NamedTuple):
    """The kept columns of a table's rows, each an array of its final dtype."""

    rows: int
    columns: dict[str, Any]


class _Piece(NamedTuple):
    """What one task produced: table pieces for its graphs, in order, and their TSV rows
    (rendered in the worker, when writing, so that formatting runs in parallel too)."""

    attributes: _Table
    boxes: _Table
    files: int
    skipped: list[tuple[str, str]]
    texts: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Task:
    """What every chunk of graphs is read for: from where, which columns, whether to render."""

    catalog: _Catalog
    skip_bad: bool
    kept: _Kept
    render: bool


class _Scanner:
    """Turns chunks of member names into table pieces, holding one open reader."""

    def __init__(self, task: _Task) -> None:
        self._task = task
        self._reader = _open_reader(task.catalog)

    def __enter__(self) -> _Scanner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._reader.close()

    def scan(self, names: Sequence[str]) -> _Piece:
        # Rows are acyclic tuples: the cycle collector's passes over them would cost ~half
        # as much again as making them.
        with paused_gc():
            return self._scan(names)

    def _scan(self, names: Sequence[str]) -> _Piece:
        labels: list[tuple[Any, ...]] = []
        boxes: list[tuple[Any, ...]] = []
        skipped: list[tuple[str, str]] = []
        # One object per distinct string: rows share it, and pickling sends it once per task.
        strings: dict[str, str] = {}
        parsed: dict[str, tuple[Any, ...]] = {}
        for name in names:
            try:
                data = self._reader.read(name)
                fast = _fast_rows(data, strings, parsed)
                if fast is not None:
                    labels.extend(fast[0])
                    boxes.extend(fast[1])
                    continue
                graph = _decode(data)
                graph_labels = _label_rows(graph, strings)
                boxes.extend(_box_rows(graph, strings))
            except _BadGraph as bad:
                if not self._task.skip_bad:
                    raise DataError(f"{self._task.catalog.where(name)}: {bad}") from None
                skipped.append((name, str(bad)))
                continue
            labels.extend(graph_labels)
        kept, render = self._task.kept, self._task.render
        # Rendering needs every column; otherwise only the kept ones are built.
        tables = (_table(ATTRIBUTE_COLUMNS, kept.attribute_dtypes, labels,
                         ATTRIBUTE_COLUMNS if render else kept.attributes),
                  _table(BOX_COLUMNS, kept.box_dtypes, boxes,
                         BOX_COLUMNS if render else kept.boxes))
        texts = tuple(_tsv_rows(table) for table in tables) if render else ()
        return _Piece(_keep(tables[0], kept.attributes), _keep(tables[1], kept.boxes),
                      len(names) - len(skipped), skipped, texts)


_worker_scanner: _Scanner | None = None


def _start_worker(task: _Task) -> None:
    # Each worker opens the archive once and keeps it for all its tasks.
    global _worker_scanner
    ignore_interrupt()
    _worker_scanner = _Scanner(task)


def _scan_in_worker(names: Sequence[str]) -> _Piece:
    assert _worker_scanner is not None, "pool initializer did not run"
    return _worker_scanner.scan(names)


@contextmanager
def _scanning(task: _Task, workers: int) -> Iterator[Iterator[_Piece]]:
    """Table pieces in file order, from this process or a pool of ``workers``.

    A worker that dies (killed, or out of memory) makes the pool "broken": the read stops with
    one line instead of waiting forever for its pieces, as multiprocessing.Pool would.
    """
    chunks = _chunks(task.catalog.names, workers)
    if workers == 1 or len(chunks) <= 1:
        with _Scanner(task) as scanner:
            yield map(scanner.scan, chunks)
        return
    with process_pool(min(workers, len(chunks)), initializer=_start_worker,
                      initargs=(task,)) as pool:
        try:
            yield pool.map(_scan_in_worker, chunks)
        except BrokenProcessPool:
            raise DataError(f"{task.catalog.source.path}: a scene-graph reading process ended "
                            f"without finishing its graphs (killed, or out of memory?); nothing "
                            f"was written") from None


def _chunks(names: Sequence[str], workers: int) -> list[Sequence[str]]:
    size = max(1, min(_CHUNK_FILES, math.ceil(len(names) / (_TASKS_PER_WORKER * workers))))
    return [names[start:start + size] for start in range(0, len(names), size)]


def _worker_count(workers: int | None) -> int:
    if workers is None:
        return os.cpu_count() or 1
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    return workers


# --- one graph -> rows --------------------------------------------------------------------------


class _FastObject(msgspec.Struct, gc=False):
    """An ``objects[]`` entry: every box column, typed as the checked path requires."""

    object_id: str
    x1: int | float
    y1: int | float
    x2: int | float
    y2: int | float
    width: int | float
    height: int | float
    bbox_name: str
    synsets: list[Any]
    name: str
    original_x1: int | float
    original_y1: int | float
    original_x2: int | float
    original_y2: int | float
    original_width: int | float
    original_height: int | float


class _FastRegion(msgspec.Struct, gc=False):
    """An ``attributes[]`` entry: only what label rows read."""

    bbox_name: str
    attributes: list[list[str]]
    phrase_IDs: list[str]


class _FastGraph(msgspec.Struct, gc=False):
    """The fields of a scene graph that rows are made of; the others are skipped, not decoded."""

    image_id: str
    study_id: int | str
    attributes: list[_FastRegion]
    objects: list[_FastObject]


_FAST_DECODER = msgspec.json.Decoder(_FastGraph)
_FAST_FAILURES = (msgspec.DecodeError, _BadGraph, KeyError, ValueError, TypeError, OverflowError)


def _fast_rows(data: bytes, strings: dict[str, str], parsed: dict[str, tuple[Any, ...]]
               ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]] | None:
    """A graph's label and box rows by the fast path, or None when it needs the checked one.

    msgspec decodes only the fields rows use, into typed structs (~4x faster than ``json``
    building every dict). Whatever it or the checks here reject goes through ``_decode`` and
    the checked row functions instead, which either give the same rows or the error message
    that names the field; so both paths accept the same graphs and give the same rows.
    ``parsed`` caches each distinct ``category|yes/no|label`` string's parts.
    """
    try:
        graph = _FAST_DECODER.decode(data)
        study_id = graph.study_id
        if type(study_id) is str:
            if not (study_id.isascii() and study_id.isdigit()):
                return None
            study_id = int(study_id)
        # Out of range: the checked path's int64 rule says what is wrong. (The ignore: mypy does
        # not narrow 'type(x) is str' to int for the other branch.)
        if not 0 <= study_id < 10**18:  # type: ignore[operator]
            return None
        image_id, share = graph.image_id, strings.setdefault
        labels = []
        for region in graph.attributes:
            bbox = share(region.bbox_name, region.bbox_name)
            if len(region.attributes) != len(region.phrase_IDs):
                return None
            for row_id, texts in zip(region.phrase_IDs, region.attributes):
                token = row_id.rsplit("|", 1)[-1]
                if not (token.isascii() and token.isdigit()):
                    return None
                sent_loc = int(token)
                for text in texts:
                    parts = parsed.get(text)
                    if parts is None:
                        parts = parsed[text] = _label_parts(text, share)
                    labels.append((study_id, image_id, row_id, sent_loc, bbox, *parts))
        boxes = [_fast_box(obj, share) for obj in graph.objects]
    except _FAST_FAILURES:
        return None
    return labels, boxes


def _label_parts(text: str, share: Any) -> tuple[str, str, int, str]:
    """(categoryID, label_name, relation, context) of one label string; ValueError if malformed."""
    parts = text.split("|", 2)
    relation = _RELATION.get(parts[1]) if len(parts) == 3 and parts[0] and parts[2] else None
    if relation is None:
        raise ValueError(text)
    category, context, label = parts
    return share(category, category), share(label, label), relation, share(context, context)


def _fast_box(obj: _FastObject, share: Any) -> tuple[Any, ...]:
    numbers = (obj.x1, obj.y1, obj.x2, obj.y2, obj.width, obj.height)
    originals = (obj.original_x1, obj.original_y1, obj.original_x2, obj.original_y2,
                 obj.original_width, obj.original_height)
    # The checked path's rule (finite, magnitude below 2**53); NaN fails every comparison. A
    # box outside it sends the graph the slow way, which says what is wrong.
    if not all(-_LIMIT < value < _LIMIT for value in (*numbers, *originals)):
        raise ValueError("a number out of range")
    synsets = repr(obj.synsets)
    return (obj.object_id, *numbers, share(obj.bbox_name, obj.bbox_name),
            share(synsets, synsets), share(obj.name, obj.name), *originals)


def _decode(data: bytes) -> dict[str, Any]:
    try:
        graph = decode_json(data, bounded_ints=False)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError and JSONLimitError
        raise _BadGraph(f"not valid JSON ({_one_line(exc)})") from None
    return _expect(graph, (dict,), "graph")


def _label_rows(graph: dict[str, Any], strings: dict[str, str]) -> list[tuple[Any, ...]]:
    study_id = _study_id(graph)
    image_id = _field(graph, "image_id", (str,), "graph")
    rows: list[tuple[Any, ...]] = []
    for i, region in enumerate(_field(graph, "attributes", (list,), "graph")):
        rows.extend(_region_rows(region, f"attributes[{i}]", study_id, image_id, strings))
    return rows


def _region_rows(region: Any, where: str, study_id: int, image_id: str,
                 strings: dict[str, str]) -> Iterator[tuple[Any, ...]]:
    region = _expect(region, (dict,), where)
    share = strings.setdefault
    bbox = _field(region, "bbox_name", (str,), where)
    bbox = share(bbox, bbox)
    for k, row_id, labels in _phrases(region, where):
        sent_loc = _sentence_index(row_id, where, k)
        for j, text in enumerate(labels):
            parts = text.split("|", 2) if type(text) is str else []
            whole = len(parts) == 3 and parts[0] and parts[2]
            relation = _RELATION.get(parts[1]) if whole else None
            if relation is None:
                raise _BadGraph(f"{where}.attributes[{k}][{j}]: expected 'category|yes/no|label', "
                                f"got {_describe(text)}")
            category, context, label = parts
            yield (study_id, image_id, row_id, sent_loc, bbox, share(category, category),
                   share(label, label), relation, share(context, context))


def _phrases(region: dict[str, Any], where: str) -> Iterator[tuple[int, str, list[Any]]]:
    """(k, phrase_IDs[k], attributes[k]) of one region, after checking the lists are parallel."""
    labels = _field(region, "attributes", (list,), where)
    phrase_ids = _field(region, "phrase_IDs", (list,), where)
    # Only these two lists feed rows; the other parallel lists (phrases, cues) are not checked.
    if len(labels) != len(phrase_ids):
        raise _BadGraph(f"{where}: expected 'attributes' and 'phrase_IDs' of equal length, "
                        f"got {len(labels)} and {len(phrase_ids)}")
    for k, (strings, row_id) in enumerate(zip(labels, phrase_ids)):
        if type(row_id) is not str or type(strings) is not list:
            _expect(row_id, (str,), f"{where}.phrase_IDs[{k}]")
            _expect(strings, (list,), f"{where}.attributes[{k}]")
        yield k, row_id, strings


def _box_rows(graph: dict[str, Any], strings: dict[str, str]) -> list[tuple[Any, ...]]:
    objects = _field(graph, "objects", (list,), "graph")
    return [_box_row(obj, i, strings) for i, obj in enumerate(objects)]


def _box_row(obj: Any, i: int, strings: dict[str, str]) -> tuple[Any, ...]:
    try:
        row = _BOX_VALUES(obj)
    except (KeyError, TypeError):
        row = ()
    if not _box_is_valid(row):
        _check_box(obj, f"objects[{i}]")
    (object_id, x1, y1, x2, y2, width, height, bbox_name, synsets, name,
     *originals) = row
    share = strings.setdefault
    synsets = repr(synsets)
    # Box names, UMLS names and synsets repeat across images: keep one copy of each.
    return (object_id, x1, y1, x2, y2, width, height, share(bbox_name, bbox_name),
            share(synsets, synsets), share(name, name), *originals)


def _box_is_valid(row: tuple[Any, ...]) -> bool:
    """The fast check; ``_check_box`` repeats it field by field to say what is wrong."""
    if len(row) != len(BOX_COLUMNS):
        return False
    numbers = _BOX_NUMBERS(row)
    return (set(map(type, numbers)) <= _NUMBER_TYPES and -_LIMIT < min(numbers)
            and max(numbers) < _LIMIT and all(map(math.isfinite, numbers))
            and set(map(type, _BOX_TEXTS(row))) == _STRING_TYPE
            and type(row[_SYNSETS_AT]) is list)


def _check_box(obj: Any, where: str) -> None:
    obj = _expect(obj, (dict,), where)
    for name, kinds in _BOX_KINDS.items():
        value = _field(obj, name, kinds, where)
        # NaN or inf would be written as text that reads back as a string column.
        if kinds is _NUMBER and type(value) is float and not math.isfinite(value):
            raise _BadGraph(f"{where}.{name}: expected a finite number, got {value}")
        if kinds is _NUMBER and not -_LIMIT < value < _LIMIT:
            raise _BadGraph(f"{where}.{name}: expected a number of magnitude below 2**53, "
                            f"got one of {len(str(int(value)))} digits")


def _study_id(graph: dict[str, Any]) -> int:
    value = _field(graph, "study_id", (int, str), "graph")
    if type(value) is str and not (value.isascii() and value.isdigit()):
        raise _BadGraph(f"graph.study_id: expected an integer, got {_describe(value)}")
    if len(str(value)) > 18:  # int64 in the tables
        raise _BadGraph(f"graph.study_id: expected an integer of at most 18 digits, got "
                        f"{_describe(value)}")
    return int(value)


def _sentence_index(row_id: str, where: str, k: int) -> int:
    token = row_id.rsplit("|", 1)[-1]
    if not (token.isascii() and token.isdigit()):
        raise _BadGraph(f"{where}.phrase_IDs[{k}]: expected '<study_id>|<sentence index>', "
                        f"got {_describe(row_id)}")
    return int(token)


def _field(mapping: dict[str, Any], key: str, kinds: tuple[type, ...], where: str) -> Any:
    try:
        value = mapping[key]
    except KeyError:
        raise _BadGraph(f"{where}: missing key {key!r}") from None
    # type() rather than isinstance(): JSON booleans must not pass as integers.
    return value if type(value) in kinds else _expect(value, kinds, f"{where}.{key}")


def _expect(value: Any, kinds: tuple[type, ...], where: str) -> Any:
    if type(value) not in kinds:
        wanted = " or ".join(_JSON_TYPES[kind] for kind in kinds)
        raise _BadGraph(f"{where}: expected {wanted}, got {_describe(value)}")
    return value


def _describe(value: Any) -> str:
    kind = _JSON_TYPES.get(type(value), type(value).__name__)
    if isinstance(value, (dict, list)):
        return kind
    return f"{kind} {_REPR.repr(value)}" if value is not None else kind


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


# --- tables -------------------------------------------------------------------------------------


def _table(columns: Sequence[str], dtypes: Mapping[str, str], rows: list[tuple[Any, ...]],
           kept: Sequence[str]) -> _Table:
    values = dict(zip(columns, zip(*rows))) if rows else dict.fromkeys(columns, ())
    return _Table(len(rows), {name: _column(values[name], dtypes.get(name)) for name in kept})


def _keep(table: _Table, kept: Sequence[str]) -> _Table:
    return _Table(table.rows, {name: table.columns[name] for name in kept})


def _column(values: Sequence[Any], dtype: str | None) -> Any:
    if dtype == "category":
        # Categories are sorted, so pieces join to the same column however they were cut.
        # Coded here (a dict lookup per value) rather than by converting every value to Arrow.
        uniques = sorted(set(values))
        position = {value: code for code, value in enumerate(uniques)}
        codes = np.fromiter(map(position.__getitem__, values), dtype=np.int32, count=len(values))
        return pd.Categorical.from_codes(
            codes, dtype=pd.CategoricalDtype(pd.Index(uniques, dtype="str")))
    if dtype == "str" or not values:
        return pd.Series(values, dtype=dtype).array
    # numpy infers int64 or float64 (dtype None) several times faster than pandas.
    return np.array(values, dtype=dtype)


class _Parts:
    """One table's pieces as they arrive, joined column by column at the end."""

    def __init__(self, columns: Sequence[str]) -> None:
        self._rows = 0
        self._arrays: dict[str, list[Any]] = {name: [] for name in columns}

    def add(self, table: _Table) -> None:
        self._rows += table.rows
        for name, array in table.columns.items():
            self._arrays[name].append(array)

    def join(self, dtypes: Mapping[str, str]) -> pd.DataFrame:
        # Each column's pieces are dropped as soon as it is joined, so the peak memory is
        # the table plus one column's pieces, not two copies of the table.
        columns = {}
        for name, arrays in self._arrays.items():
            columns[name] = _join_column(arrays, dtypes.get(name))
            arrays.clear()
        return pd.DataFrame(columns, index=pd.RangeIndex(self._rows), copy=False)


def _join_column(arrays: list[Any], dtype: str | None) -> Any:
    # Empty pieces would turn integer columns into object ones, so they are left out.
    arrays = [array for array in arrays if len(array)]
    if not arrays:
        return _column((), dtype)
    if dtype == "category":
        return union_categoricals(arrays, sort_categories=True)
    if dtype == "str":
        # Arrow-backed text joins without copying: the result refers to the pieces' buffers.
        return pd.concat(map(pd.Series, arrays), ignore_index=True).array
    return np.concatenate(arrays)


def _tsv_rows(table: _Table) -> str:
    return pd.DataFrame(table.columns, copy=False).to_csv(sep="\t", index=False, header=False,
                                                          lineterminator="\n")


class _TabularWriter:
    """Streams TSV tables into staged files in one folder, then commits them together.

    Nothing is renamed unless every table was written completely, so a failure (bad input,
    a full disk, an interrupt) leaves the previous files; a crash during the renames is
    finished by the next command (see ``cxrvqa.build.commit``).
    """

    def __init__(self, folder: Path, tables: Mapping[str, Sequence[str]], *others: str) -> None:
        self._staged = StagedFiles(folder, (*tables, *others))
        self._tables = tables
        self._writers: list[Any] = []

    def __enter__(self) -> _TabularWriter:
        try:
            for name, columns in self._tables.items():
                writer = self._staged.open(name)
                writer.write(("\t".join(columns) + "\n").encode("utf-8"))
                self._writers.append(writer)
        except BaseException as exc:
            self._staged.__exit__(type(exc))
            raise
        return self

    def write(self, texts: Sequence[str]) -> None:
        """Append rows to each table, in table order."""
        for writer, text in zip(self._writers, texts):
            writer.write(text.encode("utf-8"))

    def add(self, name: str, text: str) -> None:
        """Stage one more file (one of ``others``), committed with the tables."""
        self._staged.write(name, text.encode("utf-8"))

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        self._staged.__exit__(exc_type)
