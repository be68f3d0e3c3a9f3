"""Question generation: ontology-respecting arguments, global balance, reproducibility, output."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from helpers import render_question

from cxrvqa.build.index import SceneIndex, load_index
from cxrvqa.build.layout import SourceLayout
from cxrvqa.cli import main
from cxrvqa.errors import DataError, UsageError
from cxrvqa.facts import ImageFacts
from cxrvqa.lang.check import check_paths
from cxrvqa.programs import answer, bundled_programs
from cxrvqa.synth import SynthConfig, write_sources
from cxrvqa.tools.generate import (
    Generated,
    GenerateOptions,
    Pairs,
    Template,
    generate,
    generate_split,
    load_templates,
    question_bytes,
    run_generate,
)
from cxrvqa.vocab import VQA_ATTRIBUTES, VQA_OBJECTS, category_of

QUESTION_KEYS = ["split", "idx", "image_id", "question", "content_type", "semantic_type",
                 "template", "template_program", "template_arguments"]
BINARY_LISTS = {"program_42", "program_43", "program_45", "program_46"}  # only two answers exist
PINNED_DIGEST = "36ad5dfac3f3c59467e98578dd2151dd691fb4d6423d64265a118ad4d0c7deec"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tree")
    write_sources(folder, SynthConfig(patients=800, seed=5))
    return folder


@pytest.fixture(scope="module")
def index(root: Path) -> SceneIndex:
    return load_index(SourceLayout.from_root(root))


@pytest.fixture(scope="module")
def test_split(index: SceneIndex) -> Generated:
    return generate(index, "test", GenerateOptions(per_template=20, seed=1))


_render = render_question


def test_records_have_the_released_format_and_answers(test_split: Generated,
                                                     index: SceneIndex) -> None:
    records = test_split.records
    assert [r["idx"] for r in records] == list(range(48 * 20))
    types = {t.program: (t.content_type, t.semantic_type) for t in load_templates()}
    programs = bundled_programs()
    for record in records:
        assert list(record) == [*QUESTION_KEYS, "answer"]
        assert record["split"] == "test" and record["image_id"] in index.gold
        program = record["template_program"]
        assert (record["content_type"], record["semantic_type"]) == types[program]
        assert record["template"] in [t.text for t in programs[program].templates]
        assert record["question"] == _render(record)
        assert record["answer"] == answer(programs, record, index.gold[record["image_id"]])
    assert any("tubes/lines" in r["question"] for r in records)


def test_arguments_respect_the_ontology_and_are_distinct(test_split: Generated,
                                                         index: SceneIndex) -> None:
    possible = index.ontology.possible
    for record in test_split.records:
        arguments = {k: list(v.values()) for k, v in record["template_arguments"].items()}
        for values in arguments.values():
            assert len(set(values)) == len(values)
        assert all(o in possible[a] for o in arguments["object"] for a in arguments["attribute"])
        if arguments["category"] and arguments["attribute"]:
            assert {category_of(a) for a in arguments["attribute"]} == set(arguments["category"])
        if arguments["category"] and arguments["object"] and not arguments["attribute"]:
            for category in arguments["category"]:
                for obj in arguments["object"]:
                    assert any(obj in objs for a, objs in possible.items()
                               if a in index.ontology.category
                               and index.ontology.category[a] == category)


def test_no_duplicate_question_on_an_image(test_split: Generated) -> None:
    keys = Counter((r["image_id"], r["question"]) for r in test_split.records)
    assert max(keys.values()) == 1


def test_answers_are_balanced_per_template(test_split: Generated) -> None:
    by_program: dict[str, Counter[str]] = {}
    for record in test_split.records:
        text = ", ".join(record["answer"]) if record["answer"] else "[]"
        by_program.setdefault(record["template_program"], Counter())[text] += 1
    rows = {row.program: row for row in test_split.balance}
    for program, counts in by_program.items():
        assert rows[program].answers == tuple(sorted(counts.items()))  # the report is true
        total = sum(counts.values())
        assert total == 20
        if set(counts) <= {"yes", "no"}:
            assert abs(counts["yes"] / total - 0.5) <= 0.05, program
        elif program in BINARY_LISTS:
            # As flat as two answers allow: said so, not "limited by data".
            assert sorted(counts.values()) == [10, 10] and not rows[program].balanced
            assert rows[program].status == "flat over 2 answers"
        else:
            assert max(counts.values()) / total <= 0.2, program
            assert rows[program].balanced
    assert "program_22" in test_split.render_balance()


def test_choose_questions_have_one_true_option(test_split: Generated) -> None:
    for program in ("program_10", "program_28", "program_32", "program_33"):
        answers = [r["answer"] for r in test_split.records if r["template_program"] == program]
        assert sum(len(a) == 1 for a in answers) >= 0.8 * len(answers), program


def test_paraphrases_are_used_only_when_asked(index: SceneIndex) -> None:
    programs = bundled_programs()
    wordings = [t.text for t in programs["program_22"].templates]
    assert len(wordings) > 1
    assert wordings[0] == next(t.text for t in load_templates() if t.program == "program_22")
    options = GenerateOptions(per_template=30, templates=("program_22",))
    used = {r["template"] for r in generate(index, "test", options).records}
    assert used == set(wordings)
    base = GenerateOptions(per_template=30, templates=("program_22",), paraphrases=False)
    assert {r["template"] for r in generate(index, "test", base).records} == {wordings[0]}


def test_program_headers_carry_the_released_wordings_and_types() -> None:
    # The released table, kept as test data only: the program files are the one source.
    released = Path(__file__).resolve().parents[1] / "golden" / "released_templates.tsv"
    rows = csv.DictReader(released.read_text(encoding="utf-8").splitlines(), delimiter="\t")
    assert load_templates() == tuple(Template(r["program"], r["template"], r["content_type"],
                                              r["semantic_type"]) for r in rows)
    assert [t.program for t in load_templates()] == list(bundled_programs())


def test_same_seed_same_bytes_for_any_worker_count(index: SceneIndex) -> None:
    chosen = ("program_2", "program_10", "program_14", "program_41", "program_47")
    outputs = [question_bytes(generate(index, "train", GenerateOptions(
        per_template=15, seed=9, templates=chosen, workers=workers)).records)
        for workers in (1, 2, 1)]
    assert outputs[0] == outputs[1] == outputs[2]
    other = generate(index, "train", GenerateOptions(per_template=15, seed=10, templates=chosen))
    assert question_bytes(other.records) != outputs[0]


def test_run_generate_writes_the_file_without_answers(root: Path, tmp_path: Path) -> None:
    out = tmp_path / "gen" / "valid.json"
    options = GenerateOptions(per_template=3, templates=("program_1", "program_44"), answers=False)
    generated = run_generate(SourceLayout.from_root(root), "valid", options, out)
    assert out.read_bytes() == question_bytes(generated.records)
    records = json.loads(out.read_text())
    assert len(records) == 6 and all(list(r) == QUESTION_KEYS for r in records)
    assert out.read_text().startswith("[\n  {")
    assert [p.name for p in out.parent.iterdir()] == ["valid.json"]  # no temporary left behind


def test_bad_split_is_a_data_error_and_bad_template_a_usage_error(index: SceneIndex) -> None:
    with pytest.raises(DataError, match="--split"):
        generate(index, "dev", GenerateOptions(per_template=1))
    # A name on the command line: exit 2, with a did-you-mean (was a DataError, exit 3).
    with pytest.raises(UsageError, match="'program_99': no such template program; did you mean"):
        generate(index, "test", GenerateOptions(per_template=1, templates=("program_99",)))


def test_a_wrong_template_name_stops_before_the_sources_are_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # tmp_path holds no sources: reading them would fail with exit 3.
    assert main(["generate", "--physionet-root", str(tmp_path), "--split", "test",
                 "--per-template", "1", "--templates", "program_1,progam_22",
                 "--out", str(tmp_path / "q.json")]) == 2
    assert capsys.readouterr().err == ("cxrvqa: error: --templates: 'progam_22': no such template "
                                       "program; did you mean 'program_22'?\n")


def test_a_template_named_twice_is_generated_once(index: SceneIndex) -> None:
    # Before: --templates program_1,program_1 generated program_1's questions twice over.
    twice = generate(index, "test", GenerateOptions(per_template=3, templates=("program_1",) * 2))
    once = generate(index, "test", GenerateOptions(per_template=3, templates=("program_1",)))
    assert question_bytes(twice.records) == question_bytes(once.records)
    assert [row.program for row in twice.balance] == ["program_1"]


def test_questions_need_the_facts_they_ask_about(index: SceneIndex) -> None:
    options = GenerateOptions(per_template=25, templates=("program_44", "program_47"))
    for record in generate(index, "train", options).records:
        facts = index.silver[record["image_id"]]
        if record["template_program"] == "program_44":
            assert facts.gender is not None
        else:
            assert {"left lung", "right lung", "cardiac silhouette"} <= set(facts.boxes)


def test_check_points_at_a_paraphrase_slot_without_param(tmp_path: Path) -> None:
    program = tmp_path / "program_2.cxr"
    text = (Path(__file__).resolve().parents[2] / "programs" / "program_2.cxr").read_text()
    base = 'template "Is there ${attribute} in the ${object}?"\n'
    program.write_text(text.replace(base, base + 'template "Is ${finding} in the ${object}?"\n'))
    out = io.StringIO()
    assert check_paths([program], out=out) == 1
    line = text.splitlines().index(base.strip()) + 2
    assert f"program_2.cxr:{line}:14: error: template slot '${{finding}}' has no param" \
        in out.getvalue()
    assert f"program_2.cxr:{line}:1: error: template does not mention param 'attribute'" \
        in out.getvalue()


def _hand_made_pool(images: int) -> tuple[dict[str, ImageFacts], Pairs]:
    """Images over a fixed slice of the vocabulary, half with the boxes size questions need."""
    rng = random.Random(0)
    possible = [(o, a) for o in VQA_OBJECTS[::3] for a in VQA_ATTRIBUTES[::4]]
    boxes = {"left lung": (120, 200), "right lung": (20, 100), "cardiac silhouette": (80, 150),
             "upper mediastinum": (90, 130)}
    pool = {f"image{number:02d}": ImageFacts(
        [(o, a, category_of(a)) for o, a in rng.sample(possible, rng.randrange(10))],
        rng.choice(["AP", "PA", None]), rng.choice(["M", "F", None]),
        boxes if number % 2 else {}) for number in range(images)}
    return pool, Pairs.of(possible)


def test_generated_bytes_are_pinned() -> None:
    # Digest from the sampler as first written: a faster one must draw the very same questions
    # (on 8 images, templates without placeholders run out of new questions early).
    digest = hashlib.sha256()
    for images, split in ((30, "valid"), (8, "test")):
        pool, pairs = _hand_made_pool(images)
        generated = generate_split(pool, split, pairs, GenerateOptions(per_template=6, seed=3))
        digest.update(question_bytes(generated.records) + generated.render_balance().encode())
    assert digest.hexdigest() == PINNED_DIGEST


def test_a_template_without_placeholders_asks_each_image_once() -> None:
    pool, pairs = _hand_made_pool(5)
    generated = generate_split(pool, "test", pairs, GenerateOptions(
        per_template=10, templates=("program_20",)))
    assert sorted(r["image_id"] for r in generated.records) == sorted(pool)
    # Draws stop once every image is asked, reported as the full 16-fold oversampling.
    row, = generated.balance
    assert (row.questions, row.candidates) == (5, 160)


@pytest.mark.parametrize("fields", [{"per_template": -1}, {"per_template": 1, "workers": 0},
                                    {"per_template": 1, "max_list_share": 0.0},
                                    {"per_template": 1, "max_list_share": 1.5}])
def test_options_out_of_range_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="GenerateOptions needs per_template >= 0"):
        GenerateOptions(**fields)
