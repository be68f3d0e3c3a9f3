"""Bad input to ``cxrvqa build`` (issue 3): one clean line, a non-zero exit, no output files.

Each case breaks one file of an otherwise valid tiny tree and runs the command in a fresh
process, so that stderr is exactly what a user would see (a traceback would show there).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from oracle import OracleError, build_reference
from treebuilder import SourceTree, build_argv

REPO = Path(__file__).resolve().parents[2]
QUESTION_FILES = {"_train_part1.json", "_train_part2.json", "_valid.json", "_test.json"}
RUN_CLI = "import sys; from cxrvqa.cli import main; sys.exit(main(sys.argv[1:]))"
LOCATOR = re.compile(r"\b(record|line|idx|row)\b\D{0,3}\d+|\.\w+:\d+", re.IGNORECASE)
LUNG = "left lung"


def _tree() -> SourceTree:
    """A valid tree: one labelled image per split, an unlabelled image, two questions a file."""
    tree = SourceTree()
    silver = tree.image(10_000_001, 50_010_000)
    tree.image(10_000_002, 50_020_000)
    gold = tree.image(10_000_003, 50_030_000)
    tree.silver(silver, LUNG, "pneumonia", 1)
    tree.gold(gold, LUNG, "pneumonia", 1)
    for file, image in (("_train_part1", silver), ("_train_part2", silver), ("_valid", silver),
                        ("_test", gold)):
        tree.ask(file, image, "program_22", attribute=["pneumonia"])
        tree.ask(file, image, "program_43")
    return tree


def _nothing(_: object) -> None:
    """Leave the tree or the files as they are."""


def _remove_patients(root: Path) -> None:
    next(root.rglob("patients.csv")).unlink()


def _drop_view_column(root: Path) -> None:
    path = next(root.rglob("mimic-cxr-2.0.0-metadata.csv"))
    lines = [line.split(",") for line in path.read_text().splitlines()]
    column = lines[0].index("ViewPosition")
    path.write_text("\n".join(",".join(cells[:column] + cells[column + 1:]) for cells in lines))


def _truncate_valid_json(root: Path) -> None:
    path = root / "mimiccxrvqa/dataset/_valid.json"
    path.write_text(path.read_text()[:120])


@dataclass(frozen=True)
class Case:
    """One bad input: how to break the tree, and what the message must name."""

    words: tuple[str, ...]
    located: bool = False
    edit_tree: Callable[[SourceTree], object] = _nothing
    edit_files: Callable[[Path], None] = _nothing
    gold_patients: int = 500


CASES = {
    "missing source file": Case(("patients.csv",), edit_files=_remove_patients),
    "missing column": Case(("mimic-cxr-2.0.0-metadata.csv", "ViewPosition"),
                           edit_files=_drop_view_column),
    "malformed question JSON": Case(("_valid.json",), True, edit_files=_truncate_valid_json),
    "question on an image without labels": Case(
        ("_train_part2.json",), True,
        edit_tree=lambda tree: tree.ask("_train_part2", tree.images[1].dicom_id, "program_43")),
    "unknown template_program": Case(
        ("_test.json", "program_99"), True,
        edit_tree=lambda tree: tree.questions["_test"][1].update(template_program="program_99")),
    "row_id without a sentence number": Case(
        ("attribute_relations_tabular.txt", "row_id", "|s'"),
        edit_tree=lambda tree: tree.silver(tree.images[0].dicom_id, LUNG, "pneumonia", sent="s")),
    "gold file without 500 patients": Case(
        ("gold_attributes_relations_500pts_500studies1st.txt",), gold_patients=499),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_one_line_and_no_output(tmp_path: Path, case: str) -> None:
    bad = CASES[case]
    tree = _tree()
    bad.edit_tree(tree)
    dataset = tree.write(tmp_path, gold_patients=bad.gold_patients)
    bad.edit_files(tmp_path)
    with pytest.raises((OracleError, ValueError)):
        build_reference(tmp_path, dataset)

    result = subprocess.run([sys.executable, "-c", RUN_CLI, *build_argv(tmp_path)], cwd=REPO,
                            capture_output=True, text=True, timeout=120)

    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert all(word in lines[0] for word in bad.words), lines[0]
    if bad.located:
        assert LOCATOR.search(lines[0]), lines[0]
    assert {path.name for path in dataset.iterdir()} == QUESTION_FILES
