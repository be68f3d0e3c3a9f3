"""Reading a commit journal: one that is not in the journal's format is dropped, never followed.

Found by type checking: ``_read_journal`` returned the journal's JSON entries as
``list[dict[str, str]]`` after checking only ``str(entry["final"])``, so a number or null as a
final name reached ``directory / final`` in ``settle`` as a TypeError traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cxrvqa.build.commit import JOURNAL, settle, stage_name


def _journal(folder: Path, final: object) -> Path:
    staged = folder / stage_name("train.json")
    staged.write_text("new")
    (folder / JOURNAL).write_text(json.dumps({"files": [{"staged": staged.name, "final": final}]}))
    return staged


@pytest.mark.parametrize("final", [5, None, ["train.json"], "", ".", "..", "train\0.json",
                                   "sub/train.json"])
def test_a_final_name_that_is_no_file_name_drops_the_journal(tmp_path: Path,
                                                             final: object) -> None:
    staged = _journal(tmp_path, final)
    assert settle(tmp_path)  # there was a journal: it is removed, nothing is renamed
    assert not (tmp_path / JOURNAL).exists()
    assert staged.read_text() == "new"


@pytest.mark.parametrize("suffix", ["\0.tmp", "/../x.tmp"])
def test_a_staged_name_that_is_no_file_name_drops_the_journal(tmp_path: Path,
                                                              suffix: str) -> None:
    staged = _journal(tmp_path, "train.json")
    entry = {"staged": staged.name + suffix, "final": "train.json"}
    (tmp_path / JOURNAL).write_text(json.dumps({"files": [entry]}))
    assert settle(tmp_path)
    assert not (tmp_path / JOURNAL).exists() and not (tmp_path / "train.json").exists()


def test_a_journal_in_its_format_is_rolled_forward(tmp_path: Path) -> None:
    staged = _journal(tmp_path, "train.json")
    assert settle(tmp_path)
    assert not staged.exists() and (tmp_path / "train.json").read_text() == "new"
    assert not (tmp_path / JOURNAL).exists()
