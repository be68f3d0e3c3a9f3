"""Pin the SHA-256 of everything a demo run writes: sources, question files, build, generate, export.

Restructuring and speed work must leave every byte as it was. The tree is made and read
only through the command line (``cxrvqa.cli.main``), whose entry point never moves.

When the synthetic generator changes on purpose, its tree digest changes; then build the new
tree with the previous builder and the current one, check they agree, and update the pins in
the same commit, saying so.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from cxrvqa.cli import main

DEMO = ["--patients", "700", "--seed", "7"]

PINS = {
    "tree": "f55852a2e85513ff8cc2b72ac590b44a4fe787b0cfbe3c1ee02f3d381249a968",
    "built": "141b80f93ffbf573423ef44cdd1db6a9cd3c4b82e54e870fd01fa398b555815c",
    "generated": "1367704f04caaacdaa2c3544bc6dd3e944185f75165958916283182ea7f87f25",
    "export": "fde7122d774e7f6d6b8e354e1a357461da6ace5d8cf4df1b9f2a0d78c906c6a7",
}


def _digest(root: Path, pattern: str = "**/*") -> str:
    """One digest over the relative paths and bytes of every file under ``root``.

    cxrvqa's own bookkeeping (``.cxrvqa-manifest.json``, the SHA-256s of the last build) is
    not part of the dataset and is left out.
    """
    digest = hashlib.sha256()
    for path in sorted(p for p in root.glob(pattern)
                       if p.is_file() and not p.name.startswith(".cxrvqa-")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pinned") / "demo"
    assert main(["demo", "--out", str(root), *DEMO]) == 0
    return root


def test_synthetic_tree_is_pinned(demo: Path) -> None:
    assert _digest(demo / "physionet.org") == PINS["tree"]


def test_built_files_are_pinned(demo: Path) -> None:
    dataset = demo / "mimiccxrvqa" / "dataset"
    assert _digest(dataset) == PINS["built"]


def test_generated_questions_are_pinned(demo: Path, tmp_path: Path) -> None:
    digest = hashlib.sha256()
    for split in ("valid", "test"):
        out = tmp_path / f"{split}.json"
        assert main(["generate", "--physionet-root", str(demo), "--split", split,
                     "--per-template", "5", "--seed", "3", "--out", str(out)]) == 0
        digest.update(out.read_bytes())
    assert digest.hexdigest() == PINS["generated"]


def test_exported_rows_are_pinned(demo: Path, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "parquet"
    assert main(["export", "--format", "parquet", "--out", str(out),
                 "--dataset-dir", str(demo / "mimiccxrvqa" / "dataset")]) == 0
    # Rows, not file bytes: Parquet metadata names the pyarrow version that wrote it. The
    # schema as (name, type, nullable): its printed form shortens long types in newer pyarrow.
    digest = hashlib.sha256()
    for split in ("train", "valid", "test"):
        table = pq.read_table(out / f"{split}.parquet")
        schema = [[field.name, str(field.type), field.nullable] for field in table.schema]
        digest.update(json.dumps([schema, table.to_pylist()]).encode())
    assert digest.hexdigest() == PINS["export"]
