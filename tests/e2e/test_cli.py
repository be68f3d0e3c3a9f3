"""The command line a researcher meets: version, help, exit codes, and each command's new outputs.

Every test calls ``cxrvqa.cli.main([...])`` and reads the captured stdout, stderr and exit code.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import os
import re
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import built_demo

import cxrvqa
from cxrvqa.build.answering import image_path
from cxrvqa.build.output import OUTPUT_KEYS, dataset_bytes
from cxrvqa.build.pipeline import build
from cxrvqa.cli import _parser, main

COMMANDS = ["build", "demo", "check", "generate", "stats", "evaluate", "explain", "scene-tabular",
            "download", "download-images", "verify", "export", "fmt", "match", "paraphrases"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    return built_demo(tmp_path_factory.mktemp("cli") / "demo", seed=11)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- 1. version, help, exit codes -------------------------------------------------------

def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--version") == (0, f"cxrvqa {cxrvqa.__version__}\n", "")


def test_top_level_help_lists_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert "Exit codes:\n  0    success\n  1    check found errors" in out
    assert "  2    usage error" in out and "  3    data error" in out
    # One column for the meanings, continuation lines included.
    lines = out.split("Exit codes:\n")[1].split("\n\n")[0].splitlines()
    assert {re.match(r"  (\d+ +| +)", line).end() for line in lines} == {7}, lines
    assert all(command in out for command in COMMANDS)


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_is_documented() -> None:
    parsers = _subparsers()
    assert sorted(parsers) == sorted(COMMANDS)
    for name, parser in parsers.items():
        assert parser.description and len(parser.description) > 80, name
        assert parser.epilog and parser.epilog.startswith("Examples:\n  "), name
        text = parser.format_help()
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.dest}: no help text"
            shows_default = action.default not in (None, False, argparse.SUPPRESS)
            if shows_default and action.option_strings:
                # the default is in the help text, given or added by the formatter
                help_text = parser._get_formatter()._expand_help(action)
                assert "default" in help_text, f"{name} {action.dest}: default not shown"
        for example in parser.epilog.splitlines()[1:]:
            command = example.strip()
            assert command.startswith(("cxrvqa ", "cd ", "PHYSIONET_USERNAME=")), example
        assert "Examples:" in text


def test_defaults_are_shown(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "generate", "--help")
    assert code == 0
    flat = " ".join(out.split())
    assert "--workers WORKERS processes; the output is the same for any number (default: 1)" in flat
    assert "--seed SEED random seed (default: 0)" in flat
    assert "(default: all 48)" in flat
    code, out, _ = run(capsys, "evaluate", "--help")
    flat = " ".join(out.split())
    assert "or JSON Lines with one such record per line" in flat


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "generate", "--split", "nope", "--per-template", "1")
    assert code == 2 and "invalid choice: 'nope'" in err
    code, _, err = run(capsys)
    assert code == 2 and "the following arguments are required: COMMAND" in err


@pytest.mark.parametrize(("argv", "message"), [
    (["demo", "--out", "{tmp}/demo", "--patients", "500"], "--patients 500: input should be greater than or equal to 501 "
                                    "(patients in total, 500 of them gold)"),
    (["generate", "--out", "{tmp}/q.json", "--split", "test", "--per-template", "-5"],
     "argument --per-template: expected a whole number from 1 to 1000000, got '-5'"),
    # Too large: demo ended as an internal error (the id ranges ran out), generate never ended.
    (["demo", "--out", "{tmp}/demo", "--patients", "9" * 23], f"--patients {'9' * 23}: input "
     "should be less than or equal to 1000000 (patients in total, 500 of them gold)"),
    (["generate", "--out", "{tmp}/q.json", "--split", "test", "--per-template", "9" * 20],
     f"argument --per-template: expected a whole number from 1 to 1000000, got '{'9' * 20}'"),
    # No name at all generated all 48 templates.
    (["generate", "--out", "{tmp}/q.json", "--split", "test", "--per-template", "1",
      "--templates", ","], "argument --templates: expected a comma list of program names such "
     "as program_1,program_22, got ','"),
    (["generate", "--out", "{tmp}/q.json", "--split", "test", "--per-template", "3", "--workers",
      "0"],
     "argument --workers: expected a whole number of at least 1, got '0'"),
    (["download", "--root", "{tmp}", "--workers", "two"], "argument --workers: expected a whole number from 1 to 64, "
                                       "got 'two'"),
    # Was taken: one thread per file to fetch (400 K for the images).
    (["download-images", "--root", "{tmp}", "--workers", "1000000000"],
     "argument --workers: expected a whole number from 1 to 64, got '1000000000'"),
    (["download", "--root", "{tmp}", "--timeout", "-1"], "argument --timeout: expected a positive number of seconds, "
                                      "got '-1'"),
    (["download", "--root", "{tmp}", "--file-timeout", "nan"], "argument --file-timeout: expected a positive number "
                                            "of seconds, got 'nan'"),
    (["download-images", "--root", "{tmp}", "--dry-run", "--timeout", "inf"],
     "argument --timeout: expected a positive number of seconds, got 'inf'"),
])
def test_numeric_options_out_of_range_are_usage_errors(
        argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *(arg.format(tmp=tmp_path) for arg in argv))
    assert code == 2 and out == "" and err.rstrip().endswith(message), err
    assert list(tmp_path.iterdir()) == []  # refused before anything was written or fetched


def test_empty_paths_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    # Path("") is "." : `build --output-dir ""` wrote into the working folder, `check ""`
    # checked it, `paraphrases --out ""` wrote 48 programs into it.
    checked = 0
    for name, parser in _subparsers().items():
        for action in parser._actions:
            if action.type is not Path:
                continue
            option = action.option_strings[0] if action.option_strings else None
            code, out, err = run(capsys, name, *([option] if option else []), "")
            shown = option or action.metavar or action.dest
            assert code == 2 and out == "", (name, shown)
            assert err.rstrip().endswith(f"argument {shown}: expected a path, got an empty "
                                         f"string"), (name, err)
            checked += 1
    assert checked >= 30


# --- 2. stats paths ---------------------------------------------------------------------

def test_stats_on_a_folder_reads_built_splits_only(demo: SimpleNamespace,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "stats", str(demo.dataset))
    assert code == 0
    built = sum(len(json.loads((demo.dataset / f"{s}.json").read_text()))
                for s in ("train", "valid", "test"))
    assert out.startswith(f"{built} questions in 3 file(s)")
    assert err == (f"cxrvqa: note: {demo.dataset}: read the built splits only; skipped "
                   f"_test.json, _train_part1.json, _train_part2.json, _valid.json, ans2idx.json\n")
    # The README's old glob: the same questions, the released copies and ans2idx skipped.
    shell_glob = [p for p in sorted(demo.dataset.glob("*.json")) if not p.name.startswith(".")]
    code, globbed, err = run(capsys, "stats", *map(str, shell_glob))
    assert code == 0 and globbed.splitlines()[:3] == out.splitlines()[:3]  # same questions
    assert err.count("cxrvqa: note: skipped") == 5 and "ans2idx.json: the answer vocabulary" in err


# --- 3. evaluate ------------------------------------------------------------------------

def test_evaluate_exit_codes(demo: SimpleNamespace, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    gold = demo.dataset / "test.json"
    code, out, err = run(capsys, "evaluate", "--predictions", str(tmp_path / "none.jsonl"),
                         "--gold", str(gold))
    assert code == 3 and out == ""
    assert err.startswith("cxrvqa: error: ") and err.count("\n") == 1
    assert "none.jsonl: cannot read the predictions" in err
    records = json.loads(gold.read_text())
    lines = tmp_path / "p.jsonl"
    lines.write_text("".join(json.dumps({"split": r["split"], "idx": r["idx"],
                                         "answer": r["answer"]}) + "\n" for r in records))
    code, out, _ = run(capsys, "evaluate", "--predictions", str(lines), "--gold", str(gold))
    assert code == 0 and f"1.0000 ({len(records)}/{len(records)}; 95% CI" in out
    assert "macro F1 (present)  1.0000" in out and "count as 0" in out


# --- 4. report and plots ----------------------------------------------------------------

class _Card(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.svgs: list[dict[str, str | None]] = []
        self.references: list[str] = []
        self.tags: list[str] = []
        self.svg_titles = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.tags.append(tag)
        self.references += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href")]
        if tag == "svg":
            self.svgs.append(values)
        if tag == "title" and self.stack and self.stack[-1] == "svg":
            self.svg_titles += 1
        if tag != "meta":  # the one void element the card uses
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.stack:
            while self.stack.pop() != tag:
                pass


def test_report_is_a_self_contained_card(demo: SimpleNamespace, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    card = tmp_path / "card.html"
    code, out, _ = run(capsys, "stats", str(demo.dataset), "--report", str(card), "--sources",
                       "--physionet-root", str(demo.root))
    assert code == 0 and f"wrote the dataset card {card} (7 charts)" in out
    text = card.read_text(encoding="utf-8")
    parser = _Card()
    parser.feed(text)
    parser.close()
    assert parser.stack == []  # every element closed
    assert [svg["data-chart"] for svg in parser.svgs] == [
        "split_sizes", "content_types", "semantic_types", "questions_per_template",
        "answer_distribution", "empty_answer_rate", "gold_silver_agreement"]
    assert parser.svg_titles == 7
    assert "script" not in parser.tags and "link" not in parser.tags and "img" not in parser.tags
    assert parser.references == []
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text)  # only the SVG namespace
    # Per-split groups with a legend, the top answers named, agreement with counts.
    assert text.count(">valid</text>") >= 3 and text.count(">test</text>") >= 3
    assert re.search(r"<title>program_1: (yes|no) \d+\.\d%</title>", text)
    assert re.search(r">\d+ of \d+ agree", text)


def test_report_never_overwrites_a_data_file(demo: SimpleNamespace, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    # Before: `stats DATASET --report DATASET/test.json` replaced the built split with the card.
    dataset = tmp_path / "dataset"
    shutil.copytree(demo.dataset, dataset)
    before = {path.name: path.read_bytes() for path in dataset.iterdir()}
    for target in ("test.json", "ans2idx.json"):
        code, out, err = run(capsys, "stats", str(dataset), "--report", str(dataset / target))
        assert code == 2 and out == ""
        assert err.rstrip().endswith(f"--report {dataset / target}: would overwrite a data file "
                                     f"with the HTML card; name a new .html file"), err
    assert {path.name: path.read_bytes() for path in dataset.iterdir()} == before


def test_report_and_plot_paths_are_checked_before_the_audit(
        demo: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Before: the whole audit was printed, then "charts: Is a directory" (OSError wording).
    folder, file = tmp_path / "charts", tmp_path / "card.html"
    folder.mkdir()
    file.write_text("x")
    code, out, err = run(capsys, "stats", str(demo.dataset), "--report", str(folder))
    assert (code, out) == (3, "")
    assert err.endswith(f"cxrvqa: error: {folder}: is a folder; expected a file (or nothing) "
                        f"there\n"), err
    if importlib.util.find_spec("matplotlib") is not None:
        code, out, err = run(capsys, "stats", str(demo.dataset), "--plot", str(file))
        assert (code, out) == (3, "")
        assert err.endswith(f"cxrvqa: error: {file}: is a file; expected a folder to write "
                            f"into\n"), err
    assert file.read_text() == "x" and list(folder.iterdir()) == []


def test_plot_without_matplotlib_exits_3(demo: SimpleNamespace, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, out, err = run(capsys, "stats", str(demo.dataset), "--plot", str(tmp_path / "p"))
    assert (code, out) == (3, "")
    assert err == "cxrvqa: error: --plot needs matplotlib: pip install 'cxrvqa[plot]'\n"
    assert not (tmp_path / "p").exists()


def test_plot_writes_png_and_svg(demo: SimpleNamespace, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    code, out, _ = run(capsys, "stats", str(demo.dataset), "--plot", str(tmp_path / "p"))
    assert code == 0 and "wrote 6 charts (PNG and SVG)" in out
    assert len(list((tmp_path / "p").glob("*.png"))) == len(list((tmp_path / "p").glob("*.svg"))) == 6


# --- 5. download-images --dry-run, demo ---------------------------------------------------

def test_download_images_dry_run_is_offline(demo: SimpleNamespace, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the dry run opened a connection")
    monkeypatch.setattr(http.client.HTTPConnection, "connect", no_network)
    monkeypatch.setattr("cxrvqa.tools.download.resolve_credentials", no_network)
    for name in ("PHYSIONET_USERNAME", "PHYSIONET_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    test = json.loads((demo.dataset / "test.json").read_text())
    wanted = sorted({r["image_path"] for r in test})
    present = tmp_path / "physionet.org/files/mimic-cxr-jpg/2.0.0/files" / wanted[0]
    present.parent.mkdir(parents=True)
    present.write_bytes(b"\xff" * 2048)
    code, out, err = run(capsys, "download-images", "--splits", "test", "--dry-run",
                         "--dataset-dir", str(demo.dataset), "--root", str(tmp_path))
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].endswith("relative to "
                             f"{tmp_path}/physionet.org/files/mimic-cxr-jpg/2.0.0/files/:")
    assert lines[1:-1] == wanted
    assert lines[-1] == (f"{len(wanted)} images; 1 already on disk (2.0 KiB); the sizes of the "
                         f"other {len(wanted) - 1} are unknown offline (a real run announces "
                         f"its total before fetching)")


def test_demo_with_scene_graph_zip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "d"
    code, out, err = run(capsys, "demo", "--out", str(out_dir), "--patients", "501",
                         "--scene-graphs", "zip", "--seed", "4")
    assert code == 0
    assert err.startswith("cxrvqa demo: writing a synthetic PhysioNet tree of 501 patients")
    assert "(answers: yes and no; empty is []; list is any other answer" in out
    stages = re.search(r"^stages \(wall time, peak memory\): (.*) \(total (\d+\.\d\d)s\)$", out,
                       re.MULTILINE)
    assert stages is not None
    times = dict(re.findall(r"(\w[\w ]*?) (\d+\.\d\d)s(?: \d+MB)?", stages.group(1)))
    assert list(times)[:2] == ["write synthetic tree", "load sources"] and "other" in times
    # Rounded to 1/100 s each: they add up to the total within the rounding.
    assert abs(sum(map(float, times.values())) - float(stages.group(2))) <= 0.01 * len(times)
    silver = out_dir / "physionet.org/files/chest-imagenome/1.0.0/silver_dataset"
    assert (silver / "scene_graph.zip").is_file()
    # Without the tabular files, a build reads the zip and gives the same bytes.
    shutil.rmtree(silver / "scene_tabular")
    report = build(str(out_dir), str(out_dir / "mimiccxrvqa/dataset"), str(tmp_path / "zip"))
    for name in ("train.json", "valid.json", "test.json", "ans2idx.json"):
        assert (tmp_path / "zip" / name).read_bytes() == (
            out_dir / "mimiccxrvqa/dataset" / name).read_bytes()
    assert sum(report.counts().values()) > 0


# --- 6. generate --complete, export permissions --------------------------------------------

def test_generate_complete(demo: SimpleNamespace, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "complete.json"
    code, _, _ = run(capsys, "generate", "--physionet-root", str(demo.root), "--split", "valid",
                     "--per-template", "2", "--complete", "--out", str(out))
    assert code == 0
    records = json.loads(out.read_text())
    assert records and all(tuple(r) == OUTPUT_KEYS for r in records)
    for record in records:
        meta = demo.index.meta[record["image_id"]]
        assert (record["subject_id"], record["study_id"]) == (str(meta.subject_id),
                                                              str(meta.study_id))
        assert record["image_path"] == image_path(meta, record["image_id"])
    assert out.read_bytes() == dataset_bytes(records)  # a built split's exact format
    plain = tmp_path / "plain.json"
    assert run(capsys, "generate", "--physionet-root", str(demo.root), "--split", "valid",
               "--per-template", "2", "--out", str(plain))[0] == 0
    stripped = [{k: v for k, v in r.items() if k not in ("subject_id", "study_id", "image_path")}
                for r in records]
    assert stripped == json.loads(plain.read_text())  # the same questions, completed
    code, _, err = run(capsys, "generate", "--physionet-root", str(demo.root), "--split",
                       "valid", "--per-template", "2", "--complete", "--no-answers")
    assert code == 2 and "drop --no-answers" in err


def test_export_folder_follows_the_umask(demo: SimpleNamespace, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    old = os.umask(0o027)
    try:
        code, _, _ = run(capsys, "export", "--format", "parquet", "--out", str(tmp_path / "x"),
                         "--dataset-dir", str(demo.dataset))
    finally:
        os.umask(old)
    assert code == 0 and (tmp_path / "x").stat().st_mode & 0o777 == 0o750


# --- 7. Python API ------------------------------------------------------------------------

def test_build_report_repr_and_summary(demo: SimpleNamespace, tmp_path: Path) -> None:
    report = build(str(demo.root), str(demo.dataset), str(tmp_path / "out"), index=demo.index)
    counts = report.counts()
    assert repr(report) == (f"BuildReport(counts={counts!r}, output_dir="
                            f"'{tmp_path / 'out'}', seconds={report.seconds:.2f})")
    summary = report.summary()
    assert summary.splitlines()[0].split() == ["split", "questions", "yes", "no", "empty", "list"]
    assert f"built {sum(counts.values())} questions into {tmp_path / 'out'}" in summary
    assert (tmp_path / "out" / "test.json").read_bytes() == (demo.dataset / "test.json").read_bytes()
    assert cxrvqa.evaluate.__module__ == "cxrvqa.programs"  # a function, not the scoring module
