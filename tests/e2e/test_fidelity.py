"""Differential test: ``cxrvqa build`` and the reference oracle on generated source trees.

Each tree comes from ``cxrvqa.synth`` (later sentences that flip earlier ones, parent and
child labels, impossible pairs, removed and nlp rows, box outliers, > 20 studies, …; the second
also with the rare real-file quirks of ``SynthConfig.rare_quirks``).
The build must write exactly the oracle's records, byte for byte once serialised, and its
per-image facts must equal the oracle's positive findings, views, genders and boxes for
every labelled image, not only the ones the questions happen to ask about.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from oracle import reference_ans2idx
from oracle.builder import Reference, answer_questions, load_reference
from treebuilder import build_argv, read_built

from cxrvqa.cli import main

# (patients incl. the 500 gold ones, seed, questions per template and split, gzip, rare quirks:
# .dcm silver ids, boxes off the integer grid and past the canvas, quoted gold sentences, ...)
CONFIGS = [(620, 11, 3, False, False), (800, 23, 3, True, True)]


@dataclass
class Built:
    """One generated tree, its index (as the question writer saw it) and both outputs."""

    root: Path
    index: Any
    reference: Reference
    built: dict[str, list[dict[str, Any]]]
    expected: dict[str, list[dict[str, Any]]]


@pytest.fixture(scope="module", params=CONFIGS, ids=lambda c: f"{c[0]}p-seed{c[1]}")
def tree(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Built:
    from cxrvqa.build.index import load_index
    from cxrvqa.build.layout import SourceLayout
    from cxrvqa.synth import SynthConfig, write_questions, write_sources

    patients, seed, per_template, gzip, rare = request.param
    root = tmp_path_factory.mktemp(f"synth{seed}")
    config = SynthConfig(patients=patients, seed=seed, questions_per_template=per_template,
                         gzip=gzip, rare_quirks=rare)
    write_sources(root, config)
    index = load_index(SourceLayout.from_root(root))
    write_questions(root, index, config)
    dataset = root / "mimiccxrvqa/dataset"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(build_argv(root)) == 0
    reference = load_reference(root)
    return Built(root, index, reference, read_built(dataset), answer_questions(reference, dataset))


def _difference(built: list[dict[str, Any]], expected: list[dict[str, Any]]) -> str:
    pairs = [(b, e) for b, e in zip(built, expected) if b != e]
    if not pairs:
        return f"{len(built)} built records, {len(expected)} expected"
    b, e = pairs[0]
    keys = [key for key in e if b.get(key) != e[key]]
    return (f"{len(pairs)} records differ; first: idx {e['idx']} {e['template_program']} "
            f"{e['template_arguments']} on {e['image_id']}: "
            + "; ".join(f"{key}: build {b.get(key)!r} oracle {e[key]!r}" for key in keys))


def test_records_equal_the_oracle(tree: Built) -> None:
    for split, expected in tree.expected.items():
        assert tree.built[split] == expected, f"{split}: {_difference(tree.built[split], expected)}"


def test_serialised_bytes_equal_the_oracle(tree: Built) -> None:
    assert json.dumps(tree.built, indent=4) == json.dumps(tree.expected, indent=4)
    # The published builder writes json.dump(records, indent=4): the files must be those bytes.
    for split, expected in tree.expected.items():
        written = (tree.root / f"mimiccxrvqa/dataset/{split}.json").read_bytes()
        assert written == json.dumps(expected, indent=4).encode("ascii")


def test_ans2idx_equals_the_oracle(tree: Built) -> None:
    written = json.loads((tree.root / "mimiccxrvqa/dataset/ans2idx.json").read_text())
    assert written == reference_ans2idx(tree.root)


def test_every_labelled_image_has_the_oracle_facts(tree: Built) -> None:
    for name in ("silver", "gold"):
        facts = getattr(tree.index, name)
        expected = tree.reference.facts(getattr(tree.reference, name))
        assert set(facts) == set(expected), f"{name}: labelled images differ"
        differing = [image for image, fact in facts.items()
                     if (fact.findings, fact.viewpos, fact.gender, dict(fact.boxes))
                     != expected[image]]
        assert not differing, f"{name}: {len(differing)} images differ, e.g. {differing[0]}"


def test_trees_exercise_every_program_and_answer_kind(tree: Built) -> None:
    # Guards the strength of the comparisons above: all 48 programs, both booleans, empty
    # and non-empty lists, in every split.
    for records in tree.expected.values():
        assert {r["template_program"] for r in records} == {f"program_{n}" for n in range(1, 49)}
        answers = [r["answer"] for r in records]
        assert ["yes"] in answers and ["no"] in answers and [] in answers
        assert any(len(answer) > 1 for answer in answers)
