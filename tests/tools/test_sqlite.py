"""cxrvqa.tools.sqlite: template recognition from question text, func_vqa in SQL, the several-images rule."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import built_demo
from paraphrase_sets import studies_connection

from cxrvqa.facts import ImageFacts
from cxrvqa.programs import answer, bundled_programs
from cxrvqa.tools.sqlite import QuestionMatcher, register
from cxrvqa.vocab import CATEGORY_WORDS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    return built_demo(tmp_path_factory.mktemp("demo"), seed=5)


@pytest.fixture(scope="module")
def matcher() -> QuestionMatcher:
    return QuestionMatcher(bundled_programs())


def test_every_built_question_is_recognised(demo: SimpleNamespace, matcher: QuestionMatcher) -> None:
    records = [r for split in ("train", "valid", "test")
               for r in json.loads((demo.dataset / f"{split}.json").read_text())]
    assert {r["template_program"] for r in records} == set(bundled_programs())
    for record in records:
        expected = {kind: args for kind, args in record["template_arguments"].items() if args}
        assert matcher.match(record["question"]) == (record["template_program"], expected)


@pytest.mark.parametrize("text", ["Are there any tubes/lines in the left lung?",
                                  "ARE THERE ANY TUBES/LINES IN THE LEFT LUNG",
                                  "  are there any   tubes/lines in the left lung ?  ",
                                  "Are there any tubesandlines in the left lung."])
def test_case_spaces_and_trailing_mark_are_ignored(matcher: QuestionMatcher, text: str) -> None:
    assert matcher.match(text) == ("program_1", {"category": {"0": "tubesandlines"},
                                                 "object": {"0": "left lung"}})


def test_numbered_slots_and_rendered_words(matcher: QuestionMatcher) -> None:
    assert matcher.match("Is this patient female?") == ("program_44", {"gender": {"0": "F"}})
    assert matcher.match("is this an ap view") == ("program_41", {"viewpos": {"0": "AP"}})
    program, arguments = matcher.match(
        "List all diseases in either the right lung or the left upper lung zone.")  # type: ignore[misc]
    assert program == "program_13"
    assert arguments == {"category": {"0": "disease"},
                         "object": {"0": "right lung", "1": "left upper lung zone"}}


def test_every_template_line_is_recognised_with_each_category_word(matcher: QuestionMatcher) -> None:
    values = {"object": "left lower lung zone", "attribute": "pleural effusion", "viewpos": "PA",
              "gender": "male"}
    for program in bundled_programs().values():
        for template in program.templates:
            for word in CATEGORY_WORDS.values():
                text = re.sub(r"\$\{(\w+)\}", lambda m: word if m.group(1).startswith("category")
                              else values[m.group(1).partition("_")[0]], template.text)
                found = matcher.match(text.upper())
                assert found is not None and found[0] == program.name, text


def test_unknown_question_is_none(matcher: QuestionMatcher) -> None:
    assert matcher.match("Is there pleural effusion in the left elbow?") is None
    assert matcher.match("what is the meaning of life?") is None


def test_neural_sql_queries(demo: SimpleNamespace) -> None:
    index = demo.index
    conn = studies_connection(index)
    register(conn, index)
    found = {row[0] for row in conn.execute(
        "select t.study_id from studies t where func_vqa('is there pleural effusion?', t.study_id) = 1")}
    expected = {index.meta[image].study_id for pool in (index.silver, index.gold)
                for image, facts in pool.items() if facts.with_attribute("pleural effusion")}
    assert found == expected and found
    assert found == {row[0] for row in conn.execute(
        "select study_id from studies where func_vqa('IS THERE PLEURAL EFFUSION', study_id) = 1")}
    image, facts = next((i, f) for pool in (index.silver, index.gold) for i, f in pool.items()
                        if f.in_category("tubesandlines"))
    study = index.meta[image].study_id
    listed = conn.execute("select func_vqa('List all tubes/lines.', ?)", (str(study),)).fetchone()[0]
    record = {"template_program": "program_25",
              "template_arguments": {"category": {"0": "tubesandlines"}}}
    assert json.loads(listed) == answer(bundled_programs(), record, facts) != []
    assert conn.execute("select func_vqa('Is there pleural effusion?', 1)").fetchone() == (None,)


def test_odd_sql_values(demo: SimpleNamespace) -> None:
    # Before: a NULL question failed the statement as "unknown question 'None'", a study id '²'
    # or of 5000 digits failed it with int()'s ValueError, a REAL study id gave NULL, and a
    # BLOB question was matched as its Python repr "b'...'".
    conn = studies_connection(demo.index)
    vqa = register(conn, demo.index)
    study = next(iter(demo.index.meta.values())).study_id
    question = "is there pleural effusion?"
    expected = conn.execute("select func_vqa(?, ?)", (question, study)).fetchone()
    assert expected[0] in (0, 1)
    with vqa.named_errors():
        assert conn.execute("select func_vqa(?, ?)", (question, float(study))).fetchone() == expected
        for odd in ("²", "9" * 5000, "", b"\x00", -1, 12.5):
            assert conn.execute("select func_vqa(?, ?)", (question, odd)).fetchone() == (None,)
        assert conn.execute("select func_vqa(NULL, ?)", (study,)).fetchone() == (None,)
        assert conn.execute("select func_vqa(cast(? as blob), ?)",
                            (question, study)).fetchone() == expected
    with pytest.raises(sqlite3.OperationalError, match="a BLOB that is not UTF-8 text"), \
            vqa.named_errors():
        conn.execute("select func_vqa(x'ff00', ?)", (study,)).fetchall()


def test_unknown_question_error_names_the_question(demo: SimpleNamespace) -> None:
    conn = studies_connection(demo.index)
    vqa = register(conn, demo.index)
    query = "select func_vqa('is there a unicorn?', study_id) from studies"
    with pytest.raises(sqlite3.OperationalError, match="user-defined function raised exception"):
        conn.execute(query).fetchall()
    with pytest.raises(sqlite3.OperationalError,
                       match=r"^func_vqa: unknown question 'is there a unicorn\?'; closest template: "
                             r"program_22: 'Is there \$\{attribute\}\?'$"), vqa.named_errors():
        conn.execute(query).fetchall()


def test_named_errors_never_reports_an_earlier_statements_error(demo: SimpleNamespace) -> None:
    # A lone surrogate cannot be bound, so func_vqa never runs and sets no error of its own;
    # after an earlier failed call Python 3.11 reports the failed bind as SQLite's generic
    # "user-defined function raised exception". Before: named_errors() gave that the previous
    # statement's message, naming its question ('is there a unicorn?').
    conn = studies_connection(demo.index)
    vqa = register(conn, demo.index)
    with pytest.raises(sqlite3.OperationalError, match="unicorn"), vqa.named_errors():
        conn.execute("select func_vqa(?, 1)", ("is there a unicorn?",)).fetchall()
    with pytest.raises((sqlite3.OperationalError, UnicodeEncodeError)) as raised, \
            vqa.named_errors():
        conn.execute("select func_vqa(?, 1)", ("is there \udc00?",)).fetchall()
    assert "unicorn" not in str(raised.value)


def test_named_errors_reports_this_threads_error(demo: SimpleNamespace) -> None:
    # One registered function serving a connection per thread: thread A's statement fails, then
    # thread B's fails with another question before A's named_errors() reads the message.
    vqa = register(sqlite3.connect(":memory:"), demo.index)
    a_failed, b_failed = threading.Event(), threading.Event()
    seen: dict[str, str] = {}

    def run(name: str, first: bool) -> None:
        # The order is forced (A fails, B fails, A reads): left to the scheduler, B could fail
        # first and a shared last_error would pass too.
        if not first:
            a_failed.wait(10)
        conn = sqlite3.connect(":memory:", check_same_thread=False)  # conftest closes it
        conn.create_function("func_vqa", 2, vqa)
        try:
            with vqa.named_errors():
                try:
                    conn.execute(f"select func_vqa('is there a {name}?', 1)").fetchall()
                except sqlite3.OperationalError as generic:
                    if first:
                        a_failed.set()
                        b_failed.wait(10)
                    raise generic
        except sqlite3.OperationalError as exc:
            seen[name] = str(exc)
        finally:
            (a_failed if first else b_failed).set()

    a = threading.Thread(target=run, args=("unicorn", True))
    a.start()
    run("griffin", False)
    a.join()
    assert "'is there a unicorn?'" in seen["unicorn"], seen
    assert "'is there a griffin?'" in seen["griffin"], seen


def test_several_images_of_one_study() -> None:
    meta = {image: SimpleNamespace(subject_id=1, study_id=7, viewpos="AP")
            for image in ("b-silver", "a-silver", "c-gold")}
    meta["d-silver"] = SimpleNamespace(subject_id=2, study_id=8, viewpos="AP")
    effusion = ImageFacts([("left lung", "pleural effusion", "anatomicalfinding")], "AP", "F", {})
    index = SimpleNamespace(
        silver={"a-silver": ImageFacts([]), "b-silver": effusion, "d-silver": effusion},
        gold={"c-gold": effusion}, meta=meta)
    conn = sqlite3.connect(":memory:")
    register(conn, index)  # type: ignore[arg-type]
    ask = "select func_vqa('is there pleural effusion', ?)"
    assert conn.execute(ask, (7,)).fetchone() == (1,)   # the gold image answers
    del index.gold["c-gold"]
    conn2 = sqlite3.connect(":memory:")
    register(conn2, index)  # type: ignore[arg-type]
    assert conn2.execute(ask, (7,)).fetchone() == (0,)  # then the smallest image id: a-silver
    assert conn2.execute(ask, ("s8",)).fetchone() == (1,)


def test_example_script_runs(demo: SimpleNamespace) -> None:
    result = subprocess.run([sys.executable, str(EXAMPLES / "sqlite_func_vqa.py"), str(demo.root)],
                            capture_output=True, text=True, check=True)
    assert "studies with pleural effusion:" in result.stdout
    assert "error: func_vqa: unknown question 'what is the meaning of life?'" in result.stdout


def test_readme_sql_snippet_runs_verbatim(demo: SimpleNamespace) -> None:
    readme = (EXAMPLES.parent / "README.md").read_text()
    section = readme[readme.index("**SQL pipelines (EHRXQA style).**"):]
    start = section.index("```python\n") + len("```python\n")
    snippet = section[start:section.index("\n```", start)]
    result = subprocess.run([sys.executable, "-c", snippet], cwd=demo.root, capture_output=True,
                            text=True, check=True)
    expected = {index for index, facts in demo.index.silver.items() | demo.index.gold.items()
                if facts.with_attribute("pleural effusion")}
    assert result.stdout == f"{len({demo.index.meta[i].study_id for i in expected})} studies with " \
                            "pleural effusion\n"
    assert expected


def test_the_registered_function_prints_short() -> None:
    # Before: its repr held every program and every study's facts (3 MB for the demo).
    index = SimpleNamespace(silver={"a": ImageFacts([("left lung", "pneumonia", "disease")])},
                            gold={}, meta={"a": SimpleNamespace(subject_id=1, study_id=7,
                                                                viewpos="AP")})
    vqa = register(sqlite3.connect(":memory:"), index)  # type: ignore[arg-type]
    assert repr(vqa) == "FuncVqa(strict=False)"
