"""``cxrvqa stats``: numbers on a hand-made file, bad input, JSON, plots, gold/silver agreement."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cxrvqa.build.index import load_index
from cxrvqa.build.layout import SourceLayout
from cxrvqa.errors import CxrvqaError, DataError
from cxrvqa.programs import answer, bundled_programs
from cxrvqa.synth import SynthConfig, write_sources
from cxrvqa.tools import stats as stats_module
from cxrvqa.tools.generate import GenerateOptions, generate, question_bytes
from cxrvqa.tools.stats import (
    PLOT_EXTRA_MESSAGE,
    charts,
    compute_stats,
    gold_silver_facts,
    question_paths,
    render_stats,
    stats_json,
    write_plots,
)


def _record(split: str, image: str, question: str, program: str, answer: list[str] | None,
            subject: str | None = None, content: str = "presence",
            semantic: str = "verify") -> dict[str, Any]:
    record: dict[str, Any] = {"split": split, "idx": 0, "image_id": image, "question": question,
                              "content_type": content, "semantic_type": semantic,
                              "template_program": program}
    if subject is not None:
        record["subject_id"] = subject
    if answer is not None:
        record["answer"] = answer
    return record


HAND_MADE = [
    _record("train", "img1", "Is there x?", "program_22", ["yes"], "1", "attribute"),
    _record("train", "img1", "Is there x?", "program_22", ["yes"], "1", "attribute"),  # duplicate
    _record("train", "img2", "Is there y?", "program_22", ["no"], "2", "attribute"),
    _record("train", "img2", "List all z.", "program_25", [], "2", semantic="query"),
    _record("valid", "img3", "List all z.", "program_25", ["a", "b"], "2", semantic="query"),
    _record("valid", "img2", "Is there y?", "program_22", ["no"], "2", "attribute"),
    _record("test", "img9", "Is there y?", "program_22", ["yes"], "9", "attribute"),
]


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(records, indent=2), encoding="utf-8")
    return path


def test_numbers_of_a_hand_made_file(tmp_path: Path) -> None:
    stats = compute_stats([_write(tmp_path / "a.json", HAND_MADE[:4]),
                           _write(tmp_path / "b.json", HAND_MADE[4:])])
    assert stats.questions == 7
    assert stats.by_split == {"test": 1, "train": 4, "valid": 2}
    assert stats.by_template == {"program_22": {"test": 1, "train": 3, "valid": 1},
                                 "program_25": {"train": 1, "valid": 1}}
    assert stats.by_content_type == {"attribute": 5, "presence": 2}
    assert stats.by_semantic_type == {"query": 2, "verify": 5}
    assert stats.answers == {"program_22": {"yes": 3, "no": 2}, "program_25": {"[]": 1, "a, b": 1}}
    assert (stats.answered, stats.empty) == (7, 1)
    assert stats.duplicates == {"test": 0, "train": 1, "valid": 0}
    overlaps = {o.splits: (o.images, o.patients, o.flagged) for o in stats.overlaps}
    assert overlaps == {"test/train": (0, 0, False), "test/valid": (0, 0, False),
                        "train/valid": (1, 1, True)}
    table = render_stats(stats)
    assert "shared train/valid: 1 images, 1 patients  <- OVERLAP" in table
    assert "empty answers: 1 of 7 (14.3%)" in table
    assert "duplicate questions on one image: test 0, train 1, valid 0" in table
    data = json.loads(stats_json(stats))
    assert data["empty_rate"] == pytest.approx(1 / 7) and data["agreement"] is None
    assert data["overlaps"][2] == {"splits": "train/valid", "images": 1, "patients": 1,
                                   "flagged": True}


def test_question_files_without_answers_or_subjects(tmp_path: Path) -> None:
    records = [{k: v for k, v in r.items() if k not in ("answer", "subject_id")}
               for r in HAND_MADE]
    stats = compute_stats([_write(tmp_path / "q.json", records)])
    assert stats.answers == {} and stats.empty_rate is None
    assert [o.patients for o in stats.overlaps] == [None, None, None]
    assert "empty answers: no answers in the files" in render_stats(stats)


def test_bad_files_are_data_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(DataError, match="broken.json: cannot read"):
        compute_stats([broken])
    with pytest.raises(DataError, match=r"x.json: record 1: expected an object with keys split"):
        compute_stats([_write(tmp_path / "x.json", [HAND_MADE[0], {"split": "train"}])])


def test_plots_are_png_and_svg_files(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    stats = compute_stats([_write(tmp_path / "a.json", HAND_MADE)])
    assert write_plots(stats, tmp_path / "plots") == (
        f"wrote 6 charts (PNG and SVG) to {tmp_path / 'plots'}")
    names = ["answer_distribution", "content_types", "empty_answer_rate",
             "questions_per_template", "semantic_types", "split_sizes"]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(
        f"{name}.{suffix}" for name in names for suffix in ("png", "svg"))
    for name in names:
        assert (tmp_path / "plots" / f"{name}.png").read_bytes().startswith(b"\x89PNG")
        assert b"<svg" in (tmp_path / "plots" / f"{name}.svg").read_bytes()


def test_plots_are_the_same_bytes_every_time(tmp_path: Path) -> None:
    # Before, each SVG carried the time it was drawn and randomly salted element ids.
    pytest.importorskip("matplotlib")
    stats = compute_stats([_write(tmp_path / "a.json", HAND_MADE)])
    write_plots(stats, tmp_path / "first")
    write_plots(stats, tmp_path / "second")
    for path in (tmp_path / "first").iterdir():
        assert path.read_bytes() == (tmp_path / "second" / path.name).read_bytes(), path.name


def test_plots_are_written_all_or_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Before, a failure at the fourth chart left three charts of the new audit beside old ones.
    pytest.importorskip("matplotlib")
    stats = compute_stats([_write(tmp_path / "a.json", HAND_MADE)])
    out = tmp_path / "plots"
    write_plots(stats, out)
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    drawn = []

    def fourth_fails(chart: Any, *args: Any) -> dict[str, bytes]:
        drawn.append(chart)
        if len(drawn) == 4:
            raise OSError(28, "No space left on device")
        return {"png": b"new", "svg": b"new"}

    monkeypatch.setattr(stats_module, "draw_with_matplotlib", fourth_fails)
    with pytest.raises(OSError):
        write_plots(stats, out)
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


def test_plots_without_matplotlib_name_the_extra(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes the import fail
    stats = compute_stats([_write(tmp_path / "a.json", HAND_MADE)])
    with pytest.raises(CxrvqaError, match=re.escape(PLOT_EXTRA_MESSAGE)) as info:
        write_plots(stats, tmp_path / "plots")
    assert info.value.exit_code == 3
    assert not (tmp_path / "plots").exists()


def test_per_split_types_and_charts(tmp_path: Path) -> None:
    stats = compute_stats([_write(tmp_path / "a.json", HAND_MADE)])
    assert stats.content_by_split == {"attribute": {"test": 1, "train": 3, "valid": 1},
                                      "presence": {"train": 1, "valid": 1}}
    assert stats.semantic_by_split == {"query": {"train": 1, "valid": 1},
                                       "verify": {"test": 1, "train": 3, "valid": 1}}
    made = {chart.name: chart for chart in charts(stats)}
    assert made["split_sizes"].rows == ["train", "valid", "test"]  # usual order, not sorted
    assert made["content_types"].series == ["train", "valid", "test"]
    assert made["content_types"].values == [[3, 1, 1], [1, 1, 0]]
    answers = made["answer_distribution"]
    # program_22: yes 3, no 2; program_25: [] 1, "a, b" 1 -- shares with the answers named.
    assert answers.values == [[0.6, 0.4, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]]
    assert answers.labels is not None and answers.labels[0][:2] == ["yes", "no"]
    assert answers.labels[1][:2] == ["[]", "a, b"]
    assert answers.notes == ["yes 60%; no 40% (2 answers, 5 q.)", "[] 50%; a, b 50% (2 answers, 2 q.)"]
    empty = made["empty_answer_rate"]  # yes/no templates cannot be empty: left out
    assert (empty.rows, empty.values, empty.notes) == (["program_25"], [[0.5]], ["1 of 2"])
    assert "gold_silver_agreement" not in made


def test_question_paths_take_built_splits_of_a_folder(tmp_path: Path) -> None:
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    for name in ("train.json", "test.json", "_test.json", "_train_part1.json"):
        _write(dataset / name, HAND_MADE[:1])
    (dataset / "ans2idx.json").write_text('{"yes": 0}')
    (dataset / "SHA256SUMS.txt").write_text("")
    files, notes = question_paths([dataset])
    assert files == [dataset / "train.json", dataset / "test.json"]
    assert notes == [f"{dataset}: read the built splits only; skipped SHA256SUMS.txt, _test.json, "
                     f"_train_part1.json, ans2idx.json"]
    # A shell glob names every file: released files of a split whose built file is read,
    # the vocabulary and non-JSON files are skipped with a note; others are read.
    extra = _write(tmp_path / "generated.json", HAND_MADE[:1])
    files, notes = question_paths(sorted(dataset.glob("*")) + [extra, extra])
    assert files == [dataset / "test.json", dataset / "train.json", extra]
    assert notes == [
        f"skipped {dataset / 'SHA256SUMS.txt'}: not a JSON question file",
        f"skipped {dataset / '_test.json'}: the released questions of test.json, which is read",
        f"skipped {dataset / '_train_part1.json'}: the released questions of train.json, which "
        f"is read",
        f"skipped {dataset / 'ans2idx.json'}: the answer vocabulary, not questions",
        f"skipped {extra}: named twice"]
    alone, notes = question_paths([dataset / "_test.json"])  # named alone, it is audited
    assert alone == [dataset / "_test.json"] and notes == []
    with pytest.raises(DataError, match="nowhere.json: not found"):
        question_paths([tmp_path / "nowhere.json"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no built split files \(train.json"):
        question_paths([tmp_path / "empty"])


def test_gold_vs_silver_agreement_with_sources(tmp_path: Path) -> None:
    write_sources(tmp_path, SynthConfig(patients=501, seed=2))
    layout = SourceLayout.from_root(tmp_path)
    index = load_index(layout)
    records = generate(index, "test", GenerateOptions(
        per_template=6, templates=("program_22", "program_27", "program_47"))).records
    path = tmp_path / "test.json"
    path.write_bytes(question_bytes(records))
    stats = compute_stats([path], layout)
    assert stats.agreement is not None
    silver = gold_silver_facts(layout, index)
    # Silver findings come from the image's silver rows (and their parents), not from the gold file.
    rows = pd.read_csv(layout.silver_labels, sep="\t", dtype=str, keep_default_na=False)
    for image, facts in silver.items():
        named = set(rows.loc[rows["image_id"] == image, "label_name"])
        named |= {parent for child in named for parent in index.ontology.attribute_parents.get(
            child, ())}  # labels also count for their parents (§4)
        assert {attribute for _, attribute, _ in facts.findings} <= named
    assert any(silver[i].findings != index.gold[i].findings for i in silver)
    programs = bundled_programs()
    for program, tally in stats.agreement.items():
        mine = [r for r in records if r["template_program"] == program]
        assert tally.questions == len(mine) == 6
        expected = sum(answer(programs, r, silver[r["image_id"]]) == r["answer"]
                       for r in mine if r["image_id"] in silver)
        assert tally.agree == expected
    assert "gold=silver" in render_stats(stats)
    chart = {c.name: c for c in charts(stats)}["gold_silver_agreement"]
    assert chart.rows == list(stats.agreement)
    for row, values, note in zip(chart.rows, chart.values, chart.notes or []):
        tally = stats.agreement[row]
        assert values == [tally.rate or 0.0] and note.startswith(f"{tally.agree} of ")
    assert {o.splits for o in stats.overlaps} == set()  # one split: nothing to share


def test_long_template_names_keep_the_columns_aligned(tmp_path: Path) -> None:
    # Before: the template column was 12 wide, so an author's 'right_side_categories' pushed
    # its row's numbers out from under the header.
    records = [_record("test", "img1", "Is there x?", "right_side_categories", ["yes"]),
               _record("test", "img2", "Is there y?", "program_22", ["no"])]
    lines = render_stats(compute_stats([_write(tmp_path / "q.json", records)])).splitlines()
    header = next(line for line in lines if line.startswith("template"))
    rows = [line for line in lines if line.startswith(("right_side_categories ", "program_22 "))]
    assert len(rows) == 2
    for row in rows:  # the count (1) ends where its column's header ends
        assert row.index("1") + 1 == header.index("test") + len("test")
