"""cxrvqa.tools.evaluate: metrics on hand-computed cases, an independent F1 re-computation, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxrvqa.cli import main
from cxrvqa.errors import DataError
from cxrvqa.tools.evaluate import compare, default_vocabulary, evaluate, score
from cxrvqa.tools.uncertainty import mcnemar_exact, paired_difference, wilson

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
VOCAB = ["left lung", "no", "pneumonia", "right lung", "yes"]


def gold_record(idx: int, answer: list[str], program: str = "program_22",
                content: str = "attribute", semantic: str = "verify") -> dict[str, object]:
    return {"split": "test", "idx": idx, "content_type": content, "semantic_type": semantic,
            "template_program": program, "answer": answer}


GOLD = [gold_record(0, ["yes"]), gold_record(1, ["no"]),
        gold_record(2, ["left lung", "right lung"], "program_31", "anatomy", "query"),
        gold_record(3, [], "program_31", "anatomy", "query")]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "test.json").write_text(json.dumps(GOLD))
    (tmp_path / "ans2idx.json").write_text(json.dumps({a: i for i, a in enumerate(VOCAB)}))
    return {"gold": tmp_path / "test.json", "dir": tmp_path}


def write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_hand_computed_metrics(files: dict[str, Path]) -> None:
    predictions = write(files["dir"] / "p.json", [
        {"split": "test", "idx": 0, "answer": ["Yes "]},          # right after normalising
        {"split": "test", "idx": 1, "answer": ["yes"]},           # wrong
        {"split": "test", "idx": 2, "answer": ["left lung"]},     # partial
        {"split": "test", "idx": 3, "answer": []}])               # right (empty)
    report = evaluate(predictions, files["gold"])
    assert (report.total, report.correct) == (4, 2)
    # yes: tp1 fp1 -> 2/3; no: fn1 -> 0; left lung: tp1 -> 1; right lung: fn1 -> 0; pneumonia: 0
    assert report.micro_f1 == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))
    assert report.macro_f1 == pytest.approx((2 / 3 + 0 + 1 + 0 + 0) / 5)
    assert report.weighted_f1 == pytest.approx((2 / 3 * 1 + 0 * 1 + 1 * 1 + 0 * 1) / 4)
    by_content = {g.name: (g.total, g.correct) for g in report.groups["content_type"]}
    assert by_content == {"anatomy": (2, 1), "attribute": (2, 1)}
    assert [g.name for g in report.groups["template_program"]] == ["program_22", "program_31"]
    assert sum(report.problems.values()) == 0


def test_both_prediction_shapes_score_the_same(files: dict[str, Path]) -> None:
    as_list = write(files["dir"] / "a.json", [{"split": r["split"], "idx": r["idx"],
                                               "answer": r["answer"]} for r in GOLD])
    as_dict = write(files["dir"] / "b.json", {f"test:{r['idx']}": r["answer"] for r in GOLD})
    first, second = evaluate(as_list, files["gold"]), evaluate(as_dict, files["gold"])
    assert first.to_json() == second.to_json()
    assert first.accuracy == 1.0 and first.micro_f1 == 1.0 and first.weighted_f1 == 1.0
    assert first.macro_f1 == pytest.approx(4 / 5)  # pneumonia: neither gold nor predicted -> 0


def test_problems_are_counted_not_raised(files: dict[str, Path]) -> None:
    predictions = write(files["dir"] / "p.json", [
        {"split": "test", "idx": 0, "answer": ["yes", "maybe"]},  # unknown answer
        {"split": "test", "idx": 0, "answer": ["yes"]},           # duplicate
        {"split": "test", "idx": 1, "answer": "no"},              # malformed: a string
        {"split": "test", "idx": 9, "answer": ["no"]},            # extra
        {"split": "test", "answer": ["no"]},                       # malformed: no idx
        {"split": "test", "idx": 2, "answer": [1, 2]},             # malformed: not strings
        "garbage"])                                                # malformed
    report = evaluate(predictions, files["gold"])
    assert report.problems == {"unreadable": 0, "malformed": 4, "duplicate": 1, "missing": 3,
                               "extra": 1, "unknown_answer": 1}
    assert report.examples["unknown_answer"] == ["test:0: 'maybe'"]
    assert report.examples["missing"] == ["test:1", "test:2", "test:3"]
    assert report.examples["malformed"][0] == (
        "record 2: answer 'no' is a string; expected a list of answer strings such as ['no']")
    assert report.correct == 0  # idx 0 holds an unknown answer; idx 1's string is not accepted
    text = report.render()
    assert "malformed 4" in text and "extra: test:9" in text


def test_predictions_of_another_split_say_so(files: dict[str, Path]) -> None:
    # Before: accuracy 0, "missing 4, extra 4" and nothing about why.
    other = write(files["dir"] / "valid_preds.json", {f"valid:{r['idx']}": r["answer"]
                                                      for r in GOLD})
    report = evaluate(other, files["gold"])
    hint = ("every prediction is for split valid, the gold file holds split test: give the "
            "matching split's file as --gold")
    assert (report.correct, report.problems["extra"], report.hint) == (0, 4, hint)
    assert report.render().endswith(f"\nhint: {hint}") and report.to_json()["hint"] == hint
    # One prediction of the gold split is enough to score as usual, without the hint.
    mixed = write(files["dir"] / "mixed.json", {"valid:0": ["yes"], "test:0": ["yes"]})
    assert evaluate(mixed, files["gold"]).hint is None


def test_unreadable_predictions_are_data_errors(files: dict[str, Path]) -> None:
    bad = files["dir"] / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match=r"bad\.json: expected a JSON list, a JSON object or "
                                        r"JSON Lines of predictions") as info:
        evaluate(bad, files["gold"])
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match=r"absent\.json: cannot read the predictions"):
        evaluate(files["dir"] / "absent.json", files["gold"])
    scalar = evaluate(write(files["dir"] / "s.json", 3), files["gold"])
    assert scalar.problems["malformed"] == 1


def test_json_lines_predictions(files: dict[str, Path]) -> None:
    lines = [json.dumps({"split": r["split"], "idx": r["idx"], "answer": r["answer"]})
             for r in GOLD]
    path = files["dir"] / "p.jsonl"
    path.write_text("\n".join(lines) + "\n\n")
    as_list = write(files["dir"] / "a.json", [json.loads(line) for line in lines])
    assert evaluate(path, files["gold"]).to_json() == evaluate(as_list, files["gold"]).to_json()
    # One broken line and one string answer: counted, the rest still scored.
    path.write_text("\n".join([lines[0], "{broken", lines[2],
                               json.dumps({"split": "test", "idx": 3, "answer": "yes"})]))
    report = evaluate(path, files["gold"])
    assert report.problems["unreadable"] == 1 and report.problems["malformed"] == 1
    assert report.examples["unreadable"] == [f"{path}: line 2 is not JSON"]
    assert report.examples["malformed"][0].startswith("line 4: answer 'yes' is a string")
    assert (report.correct, report.problems["missing"]) == (2, 2)
    # A single line is JSON Lines too, not an object of three malformed 'split:idx' keys.
    path.write_text("\n" + lines[0] + "\n")
    report = evaluate(path, files["gold"])
    assert (report.correct, report.problems["missing"], sum(report.problems.values())) == (1, 3, 3)
    path.write_text(json.dumps({"split": "test", "idx": 0, "answer": "yes"}))
    assert evaluate(path, files["gold"]).examples["malformed"][0].startswith("line 1: answer 'yes'")


def test_bom_null_lines_and_repeated_keys(files: dict[str, Path]) -> None:
    # Before: a BOM made a JSON file unreadable (exit 3) and JSON Lines lose their first line,
    # "null" lines were counted nowhere, and a key given twice silently kept its last answers.
    lines = [json.dumps({"split": r["split"], "idx": r["idx"], "answer": r["answer"]})
             for r in GOLD]
    expected = evaluate(write(files["dir"] / "a.json", [json.loads(line) for line in lines]),
                        files["gold"]).to_json()
    bom_lines = files["dir"] / "bom.jsonl"
    bom_lines.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode())
    assert evaluate(bom_lines, files["gold"]).to_json() == expected
    bom_object = files["dir"] / "bom.json"
    bom_object.write_bytes(b"\xef\xbb\xbf" + json.dumps(
        {f"test:{r['idx']}": r["answer"] for r in GOLD}).encode())
    assert evaluate(bom_object, files["gold"]).to_json() == expected
    nulls = files["dir"] / "nulls.jsonl"
    nulls.write_text("\n".join([lines[0], "null", "null"]))
    report = evaluate(nulls, files["gold"])
    assert (report.problems["malformed"], report.problems["unreadable"]) == (2, 0)
    twice = files["dir"] / "twice.json"
    twice.write_text('{"test:0": ["yes"], "test:0": ["no"], "test:1": {"a": 1, "a": 2}}')
    report = evaluate(twice, files["gold"])
    assert report.problems["duplicate"] == 1 and report.correct == 1  # the first: ["yes"]
    assert report.examples["duplicate"] == ["key 'test:0': given twice; the first counts"]


def test_macro_f1_over_present_answers(files: dict[str, Path]) -> None:
    perfect = write(files["dir"] / "p.json", {f"test:{r['idx']}": r["answer"] for r in GOLD})
    report = evaluate(perfect, files["gold"])
    # 4 of the 5 answers occur in the gold records; pneumonia never does.
    assert report.macro_f1 == pytest.approx(4 / 5)
    assert (report.present_macro_f1, report.present_answers) == (1.0, 4)
    text = report.render()
    assert "macro F1 (present)  1.0000  (unweighted, the 4 answers present in the split)" in text
    assert "answers absent from the split (no gold, no prediction) count as 0" in text
    data = report.to_json()
    assert data["present_macro_f1"] == 1.0 and "count as 0" in data["macro_f1_note"]


def test_bad_gold_file_raises_one_line(files: dict[str, Path]) -> None:
    gold = write(files["dir"] / "g.json", [{"split": "test", "idx": "x", "answer": ["yes"]}])
    with pytest.raises(DataError, match=r"g\.json: record 0: expected split, idx") as info:
        evaluate(gold, gold)
    assert "\n" not in str(info.value)
    # Before: a repeated record was scored twice (482/482 on a 480-question split) and an idx
    # of true was taken as 1.
    twice = write(files["dir"] / "twice.json", [*GOLD, GOLD[1]])
    with pytest.raises(DataError, match=r"twice\.json: record 4: test:1 repeats an earlier"):
        evaluate(twice, twice)
    boolean = write(files["dir"] / "bool.json", [{**GOLD[1], "idx": True}])
    with pytest.raises(DataError, match=r"bool\.json: record 0: expected split, idx"):
        evaluate(boolean, boolean)
    # Before: an empty gold file printed "exact-set accuracy 0.0000 (0/0)" and exit 0.
    empty = write(files["dir"] / "empty.json", [])
    with pytest.raises(DataError, match=r"empty\.json: no records; expected a built split"):
        evaluate(empty, empty)


def test_ans2idx_must_be_what_a_build_writes(files: dict[str, Path]) -> None:
    # Before: {} scored every answer as unknown with F1s of 0 over no answers, and indices
    # were never looked at; now the rule export applies (one reader, verify.read_ans2idx).
    perfect = write(files["dir"] / "p.json", {f"test:{r['idx']}": r["answer"] for r in GOLD})
    for text in ("{}", '{"yes": "a", "no": "b"}', '{"yes": 0, "no": 0}'):
        (files["dir"] / "ans2idx.json").write_text(text)
        with pytest.raises(DataError, match=r"ans2idx\.json: expected an object mapping each "
                                            r"answer to a distinct index 0\.\.n-1"):
            evaluate(perfect, files["gold"])


def test_default_vocabulary_is_the_110_answers(tmp_path: Path) -> None:
    assert len(default_vocabulary()) == 110
    gold = write(tmp_path / "test.json", GOLD)  # no ans2idx.json beside it
    report = evaluate(write(tmp_path / "p.json", {}), gold)
    assert report.vocabulary_size == 110 and report.problems["missing"] == 4
    assert json.loads(json.dumps(report.to_json()))["weighted_f1_note"]


answer_sets = st.lists(st.sampled_from(VOCAB), unique=True, max_size=3)


@settings(deadline=None, max_examples=60)
@given(st.lists(st.tuples(answer_sets, answer_sets), min_size=1, max_size=12))
def test_f1s_match_a_matrix_computation(pairs: list[tuple[list[str], list[str]]]) -> None:
    gold = [gold_record(i, truth) for i, (truth, _) in enumerate(pairs)]
    predictions = {("test", i): guess for i, (_, guess) in enumerate(pairs)}
    report = score(predictions, gold, VOCAB)
    truth = np.array([[a in t for a in VOCAB] for t, _ in pairs])
    guess = np.array([[a in g for a in VOCAB] for _, g in pairs])
    tp, fp, fn = (truth & guess).sum(0), (~truth & guess).sum(0), (truth & ~guess).sum(0)
    denominators = 2 * tp + fp + fn
    per_label = np.where(denominators > 0, 2 * tp / np.maximum(denominators, 1), 0.0)
    support = tp + fn
    assert report.macro_f1 == pytest.approx(per_label.mean())
    micro_denominator = 2 * tp.sum() + fp.sum() + fn.sum()
    assert report.micro_f1 == pytest.approx(2 * tp.sum() / micro_denominator if micro_denominator else 0)
    weighted = (per_label * support).sum() / support.sum() if support.sum() else 0.0
    assert report.weighted_f1 == pytest.approx(weighted)
    assert report.correct == sum(set(t) == set(g) for t, g in pairs)


def test_example_script_runs(tmp_path: Path) -> None:
    train = [dict(r, split="train") for r in GOLD] + [dict(GOLD[0], split="train", idx=4)]
    write(tmp_path / "train.json", train)
    write(tmp_path / "test.json", GOLD)
    result = subprocess.run([sys.executable, str(EXAMPLES / "evaluate_predictions.py"),
                             str(tmp_path)], capture_output=True, text=True, check=True)
    assert "exact-set accuracy" in result.stdout and "weighted F1" in result.stdout
    # the majority baseline gets two of the four right, always "yes" one (idx 0, as both do)
    assert "\nall: +0.250 [" in result.stdout and "p = 1\n" in result.stdout


def test_without_ans2idx_the_gold_answers_join_the_vocabulary(tmp_path: Path) -> None:
    # What a build of an author's "returns number" program writes: its numbers are answers too.
    gold = write(tmp_path / "test.json", [*GOLD, gold_record(4, ["3"], "count_findings", "count",
                                                             "query")])
    predictions = write(tmp_path / "p.json", {"test:4": ["3"], "test:0": ["7"]})
    report = evaluate(predictions, gold)
    assert report.vocabulary_size == 111 and report.correct == 1
    assert report.problems["unknown_answer"] == 1
    assert report.examples["unknown_answer"] == ["test:0: '7'"]
    assert report.present_answers == 5  # yes, no, left lung, right lung and "3"


def test_accuracies_carry_wilson_intervals(files: dict[str, Path]) -> None:
    predictions = write(files["dir"] / "p.json", {"test:0": ["yes"], "test:3": []})
    report = evaluate(predictions, files["gold"])
    assert report.accuracy_ci == wilson(2, 4)
    assert report.to_json()["accuracy_ci95"] == list(wilson(2, 4))
    anatomy = report.to_json()["groups"]["content_type"]["anatomy"]
    assert anatomy["accuracy_ci95"] == list(wilson(1, 2))
    low, high = wilson(2, 4)
    assert f"0.5000 (2/4; 95% CI [{low:.4f}, {high:.4f}], Wilson)" in report.render()


def test_compare_pairs_two_models_record_by_record(files: dict[str, Path],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    # ours: right on 0, 2, 3; the baseline: right on 1 and 3.
    ours = write(files["dir"] / "ours.json", {"test:0": ["yes"], "test:1": ["yes"],
                                             "test:2": ["right lung", "left lung"], "test:3": []})
    base = write(files["dir"] / "base.json", {"test:0": ["no"], "test:1": ["no"],
                                             "test:2": ["left lung"], "test:3": []})
    result = compare(ours, base, files["gold"])
    assert (result.first.correct, result.second.correct) == (3, 2)
    paired = {s.name: (s.total, s.first_correct, s.second_correct, s.only_first, s.only_second)
              for s in result.paired}
    assert paired == {"all": (4, 3, 2, 2, 1), "content_type=attribute": (2, 1, 1, 1, 1),
                      "content_type=anatomy": (2, 2, 1, 1, 0)}
    assert list(paired) == ["all", "content_type=anatomy", "content_type=attribute"]
    every = result.to_json()["paired"]["all"]
    assert every["difference"] == 0.25 and every["mcnemar_p"] == mcnemar_exact(2, 1) == 1.0
    assert every["difference_ci95"] == list(paired_difference(2, 1, 4)[1:])
    assert main(["evaluate", "--predictions", str(ours), "--baseline", str(base),
                 "--gold", str(files["gold"])]) == 0
    out = capsys.readouterr().out
    assert out.startswith("records             4\n")
    assert f"paired with the baseline {base}" in out
    assert "\ncontent_type=anatomy 2 1.0000 0.5000 +0.5000 [" in "\n".join(
        " ".join(line.split()) for line in out.splitlines())
    assert main(["evaluate", "--predictions", str(ours), "--baseline", str(base),
                 "--gold", str(files["gold"]), "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"predictions", "baseline", "paired"}


def test_an_unreadable_baseline_is_a_data_error(files: dict[str, Path]) -> None:
    ours = write(files["dir"] / "ours.json", {"test:0": ["yes"]})
    with pytest.raises(DataError, match=r"missing\.json: cannot read the predictions"):
        compare(ours, files["dir"] / "missing.json", files["gold"])


def test_the_paired_table_shows_control_characters_escaped(files: dict[str, Path]) -> None:
    # A content type read from the gold file reached the terminal raw, and split the table row.
    gold = write(files["dir"] / "odd.json", [gold_record(0, ["yes"], content="a\x1b[31m\nb")])
    ours = write(files["dir"] / "ours.json", {"test:0": ["yes"]})
    rendered = compare(ours, ours, gold).render()
    assert "\x1b" not in rendered and "content_type=a\\x1b[31m\\nb" in rendered
