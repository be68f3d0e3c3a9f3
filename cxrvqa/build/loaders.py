"""Read the PhysioNet source tables into pandas frames with checked columns and dtypes.

Every reader names the file in its error: a missing file, a missing column or an
unparseable value becomes one ``DataError`` line. Image ids lose any ``.dcm``
suffix here, so later stages never see it.
"""

from __future__ import annotations

import functools
import gzip
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cxrvqa.build.jsonio import not_utf8, read_json
from cxrvqa.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "read_attributes_file",
    "read_gold_boxes",
    "read_gold_labels",
    "read_metadata",
    "read_objects_file",
    "read_ontology",
    "read_patients",
    "read_silver_boxes",
    "read_silver_labels",
    "silver_boxes_from_arrow",
    "silver_boxes_from_frames",
    "strip_dcm",
]

LABEL_COLUMNS = ["study_id", "image_id", "row_id", "bbox", "categoryID", "label_name", "relation"]
_LABEL_TEXT = ("image_id", "row_id", "bbox", "categoryID", "label_name")
# What read_csv reads as missing by default (its documented na_values): the Arrow reader is
# given the same list, so both readers agree on which cells are empty.
_NA_VALUES = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
              "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]


ARROW_BLOCK_BYTES = 1 << 24
"""Bytes per block of the Arrow reader (blocks are parsed in parallel)."""
# How pyarrow reports a block cut inside a quoted value holding a line break.
_SPLIT_VALUE = ("columns, got", "newlines_in_values")


def _display(path: Path) -> str:
    return str(path)


def read_table(path: Path, columns: Sequence[str], *, sep: str = ",",
               dtype: dict[str, Any] | None = None, nrows: int | None = None,
               require_rows: bool = False) -> pd.DataFrame:
    """Read ``columns`` of a delimited file, naming the file and the column on failure."""
    if not path.exists():
        raise DataError(f"{_display(path)}: file not found")
    try:
        header = pd.read_csv(path, sep=sep, nrows=0).columns
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError,
            EOFError, zlib.error) as exc:
        raise _unreadable(path, exc, "cannot read the header: ") from None
    missing = [column for column in columns if column not in header]
    if missing:
        raise DataError(f"{_display(path)}: missing column(s) {', '.join(map(repr, missing))}; "
                        f"expected {', '.join(columns)}")
    try:
        frame = pd.read_csv(path, sep=sep, usecols=list(columns), dtype=dtype, nrows=nrows)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError,
            zlib.error) as exc:  # EOFError, zlib.error: a truncated or damaged .gz
        raise _unreadable(path, exc) from None
    if require_rows and frame.empty:  # an emptied table is damage, not an empty cohort
        raise DataError(f"{_display(path)}: no rows after the header")
    return frame


def _unreadable(path: Path, exc: BaseException, what: str = "") -> DataError:
    """The one-line error for a text file that cannot be read; bad UTF-8 is placed by its line
    and column (read_csv's "position" counts from the start of one of its buffers)."""
    if isinstance(exc, UnicodeDecodeError):
        return DataError(f"{_display(path)}:{_first_bad_utf8(path)}")
    return DataError(f"{_display(path)}: {what}{_one_line(exc)}")


def _first_bad_utf8(path: Path) -> str:
    """'line:column: ...' of the first byte of ``path`` (uncompressed) that is not UTF-8."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as stream:
            for number, line in enumerate(stream, start=1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    return not_utf8(line, exc.start, number)
    except (OSError, EOFError, zlib.error) as exc:
        return f" {_one_line(exc)}"
    return " not UTF-8 text; expected UTF-8"  # read_csv saw what this scan did not


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, (EOFError, zlib.error, gzip.BadGzipFile)):
        # Python's words ("Compressed file ended before the end-of-stream marker was
        # reached") do not say what to do: a cut download or an error page saved as .gz.
        return f"truncated or damaged .gz file ({text}); fetch it again with `cxrvqa download`"
    return text


@functools.cache
def _memory_pool() -> pa.MemoryPool:
    """Arrow's allocator for these reads: jemalloc returning freed pages at once.

    The default pool (mimalloc) keeps the pages of the parse buffers: at full size the
    process stays ~0.7 GB larger after the label file is read (bench/RESULTS.md).
    """
    import pyarrow as pa

    try:
        pool = pa.jemalloc_memory_pool()
        pa.jemalloc_set_decay_ms(0)
    except NotImplementedError:  # a pyarrow built without jemalloc
        return pa.default_memory_pool()
    return pool


def _read_arrow(path: Path, columns: Sequence[str], floats: Sequence[str] = (),
                strings: Sequence[str] = ()) -> pa.Table | None:
    """``columns`` of a tab-separated file by pyarrow's multi-threaded reader, or None.

    Columns are dictionary-encoded text (names repeat across millions of rows), except
    ``floats`` (float64) and ``strings`` (plain text). None means a file this reader
    does not read as read_csv would (a ragged line, bad UTF-8, a number it does not
    parse, a missing column...): the caller then reads it with read_csv, which either
    reads it or says exactly what is wrong. At full size this reader takes a quarter of
    read_csv's CPU time and a third of its memory (bench/RESULTS.md).
    """
    import pyarrow as pa
    from pyarrow import csv

    text = pa.dictionary(pa.int32(), pa.string())
    types = {column: pa.float64() if column in floats else pa.string() if column in strings
             else text for column in columns}
    convert = csv.ConvertOptions(include_columns=list(columns), column_types=types,
                                 null_values=_NA_VALUES, strings_can_be_null=True)
    for newlines in (False, True):
        try:
            # Each block has its own dictionaries; to_pandas and silver_boxes_from_arrow unify them.
            return csv.read_csv(
                path, parse_options=csv.ParseOptions(delimiter="\t", newlines_in_values=newlines),
                read_options=csv.ReadOptions(block_size=ARROW_BLOCK_BYTES),
                convert_options=convert, memory_pool=_memory_pool())
        except (pa.ArrowException, OSError) as exc:
            # Blocks are cut at line breaks: one inside a quoted value (a sentence column
            # holding report text) leaves a short row, or the parser out of step with the
            # cutter. Reading with line breaks allowed in values is slower: the second try.
            if newlines or not any(sign in str(exc) for sign in _SPLIT_VALUE):
                return None
    return None


def strip_dcm(ids: pd.Series) -> pd.Series:
    """Drop a ``.dcm`` suffix from image ids (gold files always carry one); categoricals stay so."""
    if isinstance(ids.dtype, pd.CategoricalDtype):
        # Two ids may become one ("x" and "x.dcm"), so the stripped names are factorized again.
        codes, names = pd.factorize(ids.cat.categories.str.replace(".dcm", "", regex=False))
        old = ids.cat.codes.to_numpy()
        return pd.Series(pd.Categorical.from_codes(np.where(old >= 0, codes[old], -1), names),
                         index=ids.index, name=ids.name)
    return ids.str.replace(".dcm", "", regex=False)


def _require_ints(frame: pd.DataFrame, column: str, path: Path) -> None:
    values = frame[column]
    categorical = isinstance(values.dtype, pd.CategoricalDtype)
    # A categorical's distinct values are checked once each, not once per row.
    parsed = pd.to_numeric(pd.Series(values.cat.categories) if categorical else values,
                           errors="coerce")
    good = _int64s(parsed)
    codes = values.cat.codes.to_numpy() if categorical else None
    bad = np.append(~good, True)[codes] if categorical else ~good  # code -1: a missing value
    if bad.any():
        line = int(bad.nonzero()[0][0]) + 2
        shown = values.iloc[line - 2]
        if isinstance(shown, np.generic):  # read_csv's number: show it, not numpy's repr
            shown = shown.item()
        raise DataError(f"{_display(path)}: line {line}: column {column!r} must be an integer, "
                        f"got {shown!r}")
    numbers = parsed.where(good, 0).astype("int64").to_numpy()  # unused bad names: no matter
    frame[column] = numbers[codes] if categorical else numbers


def _int64s(parsed: pd.Series) -> np.ndarray:
    """Which of pd.to_numeric's results are integers that int64 holds (not inf, not 2**63)."""
    if parsed.dtype.kind == "i":
        return np.ones(len(parsed), dtype=bool)
    if parsed.dtype.kind == "u":  # beyond int64 but within uint64
        return (parsed <= np.iinfo(np.int64).max).to_numpy()
    numbers = parsed.to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        # 2**63 is exact as a float; every float below it that is whole fits int64.
        return (np.isfinite(numbers) & (numbers == np.round(numbers))
                & (numbers >= -2.0 ** 63) & (numbers < 2.0 ** 63))


def read_metadata(path: Path) -> pd.DataFrame:
    """MIMIC-CXR-JPG metadata: dicom_id, subject_id, study_id, ViewPosition, StudyDate, StudyTime."""
    columns = ["dicom_id", "subject_id", "study_id", "ViewPosition", "StudyDate", "StudyTime"]
    frame = read_table(path, columns, dtype={"dicom_id": str, "ViewPosition": str},
                       require_rows=True)
    for column in ("subject_id", "study_id", "StudyDate"):
        _require_ints(frame, column, path)
    time = pd.to_numeric(frame["StudyTime"], errors="coerce")
    if time.isna().any():
        line = int(time.isna().to_numpy().nonzero()[0][0]) + 2
        raise DataError(f"{_display(path)}: line {line}: StudyTime must be a number HHMMSS.fff")
    frame["StudyTime"] = time.astype("float64")
    return frame


def _read_labels(path: Path, extra: Sequence[str] = ()) -> pd.DataFrame:
    columns = [*extra, *LABEL_COLUMNS]
    table = _read_arrow(path, columns)
    frame = (table.to_pandas(memory_pool=_memory_pool(), self_destruct=True, split_blocks=True)
             if table is not None
             else read_table(path, columns, sep="\t", dtype=dict.fromkeys(columns, "str")))
    for column in ("study_id", "relation", *extra):
        _require_ints(frame, column, path)
    for column in _LABEL_TEXT:
        if frame[column].isna().any():
            line = int(frame[column].isna().to_numpy().nonzero()[0][0]) + 2
            raise DataError(f"{_display(path)}: line {line}: empty {column!r}")
        frame[column] = frame[column].astype("category")
    frame["image_id"] = strip_dcm(frame["image_id"])
    return frame


def read_silver_labels(path: Path) -> pd.DataFrame:
    """Silver attribute relations (scene_tabular TSV), in file order."""
    return _read_labels(path)


def read_gold_labels(path: Path) -> pd.DataFrame:
    """Gold attribute relations (TSV with patient_id), in file order."""
    return _read_labels(path, extra=["patient_id"])


def read_silver_boxes(path: Path) -> pd.DataFrame:
    """Silver boxes: image_id, bbox_name, x1, x2, width (224 scale), in file order."""
    columns = ["object_id", "bbox_name", "x1", "x2", "width"]
    read_table(path, columns, sep="\t", nrows=0)
    boxes = _boxes_by_arrow(path, columns)
    if boxes is None:
        boxes = _boxes_by_chunks(path, columns)
    _require_some_numbers(boxes, ("x1", "x2", "width"), path)
    return boxes


def _boxes_by_arrow(path: Path, columns: list[str]) -> pd.DataFrame | None:
    table = _read_arrow(path, columns, floats=("x1", "x2", "width"), strings=("object_id",))
    return None if table is None else silver_boxes_from_arrow(table)


def silver_boxes_from_arrow(table: pa.Table) -> pd.DataFrame | None:
    """The box table of an Arrow table of object_id, bbox_name (dictionary), x1, x2, width, when
    each object_id is an image id, "_" and its bbox_name, the image ids of a block of rows all
    of one length (the published layout); else None, and ``silver_boxes_from_frames`` checks
    every row and names the first that is wrong."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if table.num_rows == 0 or table["object_id"].null_count or table["bbox_name"].null_count:
        return None
    table = table.unify_dictionaries(memory_pool=_memory_pool())
    names = table["bbox_name"].chunk(0).dictionary.cast(pa.binary())
    if pc.any(pc.match_substring(names, "_")).as_py():
        return None
    binary = pa.large_binary() if pa.types.is_large_string(table["object_id"].type) else pa.binary()
    name_lengths = pc.binary_length(names).to_numpy()
    images: dict[bytes, int] = {}
    parts, name_codes = [], []
    for batch in table.select(["object_id", "bbox_name"]).to_batches(max_chunksize=1 << 20):
        ids, named = batch.column(0).cast(binary), batch.column(1)
        codes = _image_codes(ids, named, name_lengths, images)
        if codes is None:
            return None
        parts.append(codes)
        name_codes.append(named.indices.to_numpy())
    return pd.DataFrame({
        # (ignore: pandas-stubs types categories as an Index, pandas takes any list-like)
        "image_id": pd.Categorical.from_codes(np.concatenate(parts),  # type: ignore[call-overload]
                                              [image.decode() for image in images]),
        "bbox_name": pd.Categorical.from_codes(np.concatenate(name_codes),
                                               names.cast(pa.string()).to_pylist()),
        **{column: table[column].to_numpy() for column in ("x1", "x2", "width")}})


def _image_codes(ids: pa.Array, named: pa.DictionaryArray, name_lengths: np.ndarray,
                 images: dict[bytes, int]) -> np.ndarray | None:
    """Codes (first appearance, in ``images``) of the image ids in one block of object_ids;
    ``name_lengths`` are the byte lengths of the bbox_name dictionary's names."""
    import pyarrow.compute as pc

    pool = _memory_pool()
    lengths = (pc.binary_length(ids, memory_pool=pool).to_numpy()
               - name_lengths[named.indices.to_numpy()] - 1)
    length = int(lengths[0])
    if length < 1 or (lengths != length).any():
        return None
    # object_id == image + "_" + bbox_name, with no "_" in either: exactly the rule of
    # _boxes_from_frame (image = up to the first "_", bbox_name = after the last).
    separators = pc.binary_slice(ids, length, length + 1, memory_pool=pool)
    suffixes = pc.binary_slice(ids, length + 1, 1 << 30, memory_pool=pool)
    if not (pc.all(pc.equal(separators, b"_")).as_py()
            and pc.all(pc.equal(suffixes, named.cast(ids.type))).as_py()):
        return None
    encoded = pc.dictionary_encode(pc.binary_slice(ids, 0, length, memory_pool=pool),
                                   memory_pool=pool)
    found = encoded.dictionary.to_pylist()
    if any(b"_" in image for image in found):
        return None
    codes = np.array([images.setdefault(image, len(images)) for image in found], dtype=np.int32)
    return codes[encoded.indices.to_numpy()]


def _boxes_by_chunks(path: Path, columns: list[str]) -> pd.DataFrame:
    # Read in chunks: the full file has ~9 M rows, and object_id strings are only needed
    # long enough to split off the image id.
    try:
        # A context: the reader's file is closed when a bad chunk stops the read.
        with pd.read_csv(path, sep="\t", usecols=columns, chunksize=BOX_CHUNK,
                         dtype={"object_id": str, "bbox_name": str}) as chunks:
            return silver_boxes_from_frames(chunks, path, first_line=2, lines_per_frame=BOX_CHUNK)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError,
            zlib.error) as exc:
        raise _unreadable(path, exc) from None


def _require_some_numbers(boxes: pd.DataFrame, columns: Sequence[str], path: Path) -> None:
    """A column with no number at all is a damaged file, not a set of missing boxes."""
    if boxes.empty:
        raise DataError(f"{_display(path)}: no rows after the header")
    for column in columns:
        if boxes[column].isna().all():
            raise DataError(f"{_display(path)}: column {column!r}: no row holds a number")


BOX_CHUNK = 1_000_000


def silver_boxes_from_frames(frames: Iterable[pd.DataFrame], path: Path, *, first_line: int = 2,
                             lines_per_frame: int = 0) -> pd.DataFrame:
    """Silver box rows from frames of object_id, bbox_name, x1, x2, width (a TSV's chunks or the
    scene graphs' rows), checked, with image_id split off; image ids and box names are categoricals
    (~9 M rows name ~240 K images and 36 boxes)."""
    image_codes: dict[str, int] = {}
    parts = [_boxes_from_frame(frame, path, image_codes, first_line + number * lines_per_frame)
             for number, frame in enumerate(frames)]
    if not parts:
        raise DataError(f"{_display(path)}: no box rows")
    boxes = pd.concat(parts, ignore_index=True)
    images = pd.Categorical.from_codes(boxes["image_id"].to_numpy(),  # type: ignore[call-overload]
                                       list(image_codes))  # (pandas-stubs: categories as an Index)
    return boxes.assign(image_id=images, bbox_name=boxes["bbox_name"].astype("category"))


def _boxes_from_frame(frame: pd.DataFrame, path: Path, image_codes: dict[str, int],
                      first_line: int = 2) -> pd.DataFrame:
    """Check and complete a silver box frame; image ids become codes of ``image_codes``."""
    # Plain Python string splits beat pandas' per-element string accessors (and Arrow's regex
    # kernels) here by ~3-5x.
    object_ids = frame["object_id"].tolist()
    names = frame["bbox_name"].tolist()
    try:  # one comparison of two lists in C; the loop below only finds the line that differs
        matching = [object_id.rpartition("_")[2] for object_id in object_ids] == names
    except AttributeError:  # an empty object_id (NaN)
        matching = False
    if not matching:
        _raise_first_mismatch(object_ids, names, path, first_line)
    codes = [image_codes.setdefault(object_id.split("_", 1)[0], len(image_codes))
             for object_id in object_ids]
    boxes = pd.DataFrame({"image_id": np.array(codes, dtype=np.int32),
                          "bbox_name": frame["bbox_name"].astype("str").reset_index(drop=True)})
    for column in ("x1", "x2", "width"):
        boxes[column] = pd.to_numeric(frame[column], errors="coerce").to_numpy()
    return boxes


def _raise_first_mismatch(object_ids: list[object], names: list[object], path: Path,
                          first_line: int) -> None:
    for line, (object_id, name) in enumerate(zip(object_ids, names), start=first_line):
        if not isinstance(object_id, str) or object_id.rsplit("_", 1)[-1] != name:
            raise DataError(f"{_display(path)}: line {line}: object_id {object_id!r} does not end "
                            f"with its bbox_name {name!r}")


def read_gold_boxes(path: Path) -> pd.DataFrame:
    """Gold boxes: image_id, bbox_name, x1, x2 parsed from the ``coord224`` strings."""
    frame = read_table(path, ["image_id", "bbox_name", "coord224"],
                       dtype={"image_id": str, "bbox_name": str, "coord224": str})
    frame["image_id"] = strip_dcm(frame["image_id"])
    coords = [_coord_x1_x2(value, number, path)  # tolist(): iterating the column is ~5x slower
              for number, value in enumerate(frame["coord224"].tolist(), start=2)]
    frame["x1"] = [x1 for x1, _ in coords]
    frame["x2"] = [x2 for _, x2 in coords]
    return frame[["image_id", "bbox_name", "x1", "x2"]]


def _coord_x1_x2(value: object, line: int, path: Path) -> tuple[int, int]:
    """x1 and x2 of a "[x1, y1, x2, y2]" string, read as the original builder reads them."""
    try:
        parts = str(value)[1:-1].split(",")
        return int(parts[0]), int(parts[2])
    except (ValueError, IndexError):
        raise DataError(f"{_display(path)}: line {line}: coord224 must look like "
                        f"'[x1, y1, x2, y2]', got {value!r}") from None


def read_patients(path: Path) -> pd.DataFrame:
    """MIMIC-IV patients: subject_id, gender."""
    frame = read_table(path, ["subject_id", "gender"], dtype={"gender": str})
    _require_ints(frame, "subject_id", path)
    # MIMIC-IV records M or F; anything else would silently answer gender questions "no".
    unknown = frame["gender"].notna() & ~frame["gender"].isin(("M", "F"))
    if unknown.any():
        line = int(unknown.to_numpy().nonzero()[0][0]) + 2
        raise DataError(f"{_display(path)}: line {line}: gender must be M or F, got "
                        f"{frame['gender'].iloc[line - 2]!r}")
    return frame


def _read_lines(path: Path) -> list[str]:
    if not path.exists():
        raise DataError(f"{_display(path)}: file not found")
    try:
        # utf-8-sig: a byte-order mark is not part of the first name (pandas drops one from
        # a CSV header likewise).
        with path.open(encoding="utf-8-sig") as handle:
            return handle.readlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise _unreadable(path, exc) from None


def read_objects_file(path: Path) -> list[str]:
    """Object names, one a line with the trailing comma stripped (file order)."""
    return [line.strip().replace(",", "") for line in _read_lines(path)]


def read_attributes_file(path: Path) -> list[tuple[str, str, str]]:
    """``(category, relation, label)`` lines of the attribute file, in file order."""
    rows = []
    for number, line in enumerate(_read_lines(path), start=1):
        parts = line.strip().replace(",", "").split("|")
        if len(parts) != 3:
            raise DataError(f"{_display(path)}: line {number}: expected 'category|yes|label', "
                            f"got {line.strip()!r}")
        rows.append((parts[0], parts[1], parts[2]))
    return rows


def read_ontology(path: Path) -> dict[str, dict[str, list[str]]]:
    """The ``all_children`` and ``possible_attribute_of`` maps of label_to_UMLS_mapping.json."""
    data = read_json(path, "Chest ImaGenome's semantics/label_to_UMLS_mapping.json")
    for key in ("all_children", "possible_attribute_of"):
        if not isinstance(data, dict) or not isinstance(data.get(key), dict):
            raise DataError(f"{_display(path)}: expected an object with key {key!r}")
        for name, values in data[key].items():
            if type(values) is not list or not all(type(value) is str for value in values):
                raise DataError(f"{_display(path)}: {key}[{name!r}]: expected a list of names")
    return {key: data[key] for key in ("all_children", "possible_attribute_of")}
