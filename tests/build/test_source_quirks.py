"""Irregular content that source-formats.md says real files may hold, on tiny hand-made trees.

Layout variants (line ends, quoting, column order, ``.dcm``, gzip...) are in
tests/e2e/test_source_variants.py; these are rows whose content is odd. Each test builds with
cxrvqa and with the independent oracle, which must agree, and checks the answers by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from oracle import OracleError, build_reference
from treebuilder import SourceTree, build_argv, build_checked

from cxrvqa.cli import main

LUNG = "left lung"


def _answers(records: list[dict[str, Any]]) -> list[list[str]]:
    return [record["answer"] for record in records]


def _cue_tree() -> tuple[SourceTree, str]:
    """An image whose only positive row is a severity cue that leaked into the attributes."""
    tree = SourceTree()
    image = tree.image(10_000_001, 50_010_000)
    tree.silver(image, LUNG, "pneumonia", 0, sent=1)
    tree.silver(image, LUNG, "mild", 1, sent=2, category="severity")
    for program, arguments in (("program_20", {}), ("program_8", {"object": [LUNG]}),
                               ("program_3", {"object": [LUNG]}),
                               ("program_2", {"object": [LUNG], "attribute": ["pneumonia"]})):
        tree.ask("_train_part1", image, program, **arguments)
    return tree, image


def test_a_leaked_cue_row_that_the_ontology_allows_changes_no_answer(tmp_path: Path) -> None:
    # source-formats.md §3.1.3: cue categories (temporal, severity, ...) may leak into a
    # phrase's attribute list. pipeline.md §4 drops only nlp rows, so such a row is kept when
    # possible_attribute_of lists its label; its category is none of the four abnormality
    # ones and its label no attribute, so no question sees it.
    tree, _ = _cue_tree()
    tree.ontology["possible_attribute_of"]["mild"] = [LUNG]
    assert _answers(build_checked(tree, tmp_path)["train"]) == [["no"], [], ["no"], ["no"]]


def test_a_leaked_cue_row_that_the_ontology_lacks_is_an_input_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # As in the original builder (possible_attribute_of[label] raises): one line naming it.
    tree, _ = _cue_tree()
    dataset = tree.write(tmp_path)
    with pytest.raises((OracleError, KeyError)):
        build_reference(tmp_path, dataset)
    assert main(build_argv(tmp_path)) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "attribute_relations_tabular.txt" in err and "'mild'" in err

