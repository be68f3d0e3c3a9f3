"""`cxrvqa check` on hostile input (issue 16): bounded output, non-regular files skipped, huge files
refused, line and column lookups computed once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import cxrvqa
from cxrvqa.cli import main
from cxrvqa.errors import DataError
from cxrvqa.lang.check import MAX_PER_CODE
from cxrvqa.lang.source import Source

REPO = Path(__file__).resolve().parents[2]


def _program_with_lets(count: int) -> str:
    # "v", not "x": x1 and x2 are keywords (box functions), which cannot name a let.
    body = "\n".join(f"let v{i} = nosuchname{i}" for i in range(count))
    return (REPO / "programs" / "program_1.cxr").read_text().replace("exists(", body + "\nexists(")


def test_output_is_bounded_per_code_and_counts_the_rest(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "program_1.cxr").write_text(_program_with_lets(MAX_PER_CODE + 7))
    assert main(["check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert out.count(": error: unknown") <= 2 * MAX_PER_CODE
    assert "and 7 more E201 errors" in out or "and 7 more E205 errors" in out
    assert out.rstrip().endswith(f"found {2 * (MAX_PER_CODE + 7)} errors in 1 file")


def test_fifo_and_device_links_are_skipped_with_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "program_1.cxr").write_text((REPO / "programs" / "program_1.cxr").read_text())
    os.mkfifo(tmp_path / "fifo.cxr")
    (tmp_path / "zero.cxr").symlink_to("/dev/zero")
    assert main(["check", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "fifo.cxr: warning: not a regular file" in captured.err
    assert "zero.cxr: warning: not a regular file" in captured.err
    assert main(["check", str(tmp_path / "fifo.cxr")]) == 1
    assert "not a regular file" in capsys.readouterr().out


def test_huge_files_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "program_1.cxr").write_bytes(b"// " + b"x" * (2 << 20))
    assert main(["check", str(tmp_path / "program_1.cxr")]) == 1
    assert "larger than" in capsys.readouterr().out


def test_fmt_and_programs_folders_read_program_files_as_check_does(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Before: fmt and a --programs folder read any *.cxr with read_text(): non-UTF-8 bytes were
    # an internal error (exit 70), a FIFO hung, and fmt took a folder without programs as done.
    (tmp_path / "bad.cxr").write_bytes(b"\xff\xfeprogram")
    assert main(["fmt", "--check", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert f"{tmp_path / 'bad.cxr'}:1:1: error: cannot read this file as UTF-8 text" in captured.out
    assert main(["match", "list all abnormality.", "--programs", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.cxr:1:1: cannot read this file as UTF-8 text" in err
    (tmp_path / "bad.cxr").unlink()
    os.mkfifo(tmp_path / "fifo.cxr")
    assert main(["fmt", str(tmp_path)]) == 1  # the FIFO skipped, so the folder has no programs
    captured = capsys.readouterr()
    assert "fifo.cxr: warning: not a regular file" in captured.err
    assert "no .cxr files in this folder" in captured.out
    assert main(["match", "list all abnormality.", "--programs", str(tmp_path)]) == 3
    assert "fifo.cxr: not a regular file" in capsys.readouterr().err

    # Before: a --programs folder without programs was taken silently (generate then made
    # questions for all 48 bundled templates).
    (tmp_path / "fifo.cxr").unlink()
    (tmp_path / "notes.txt").write_text("not a program")
    assert main(["match", "list all abnormality.", "--programs", str(tmp_path)]) == 3
    assert f"{tmp_path}: no .cxr program files in this folder" in capsys.readouterr().err


def test_load_program_names_a_missing_file_as_missing(tmp_path: Path) -> None:
    # read_program_text refuses what is not a regular file; a missing one is not a FIFO.
    with pytest.raises(DataError, match=r"missing\.cxr: file not found; expected a \.cxr"):
        cxrvqa.load_program(tmp_path / "missing.cxr")
    os.mkfifo(tmp_path / "fifo.cxr")
    with pytest.raises(DataError, match=r"fifo\.cxr: not a regular file; expected a \.cxr"):
        cxrvqa.load_program(tmp_path / "fifo.cxr")


def test_an_unreadable_folder_prelude_is_one_error(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    # Before: checking a program beside a non-UTF-8 _prelude.cxr was an internal error (exit 70).
    (tmp_path / "program_1.cxr").write_text((REPO / "programs" / "program_1.cxr").read_text())
    (tmp_path / "_prelude.cxr").write_bytes(b"\xff\xfe")
    assert main(["check", str(tmp_path / "program_1.cxr")]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{tmp_path / '_prelude.cxr'}:1:1: error: cannot read this file as UTF-8")
    assert out.endswith("found 1 error in 1 file; not checked: 1 program whose folder's "
                        "_prelude.cxr has errors\n")


def test_a_file_named_twice_is_counted_once(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    # Before: `check programs/ programs/` said "checked 96 programs"; fmt counted 98 files.
    programs = REPO / "programs"
    assert main(["check", str(programs / "program_1.cxr"), str(programs)]) == 0
    assert capsys.readouterr().out == "checked 48 programs and 1 prelude: no errors\n"
    assert main(["fmt", "--check", str(programs), str(programs)]) == 0
    assert capsys.readouterr().out == "would reformat 0 of 49 file(s)\n"
    # Other spellings of the same files, and a link to one, count once too.
    (tmp_path / "program_2.cxr").symlink_to(programs / "program_2.cxr")
    spelled = programs / ".." / "programs"
    assert main(["check", str(spelled), str(programs), str(tmp_path / "program_2.cxr")]) == 0
    assert capsys.readouterr().out == "checked 48 programs and 1 prelude: no errors\n"


def test_positions_agree_with_a_recount() -> None:
    text = "ab\ncd\n\n\tx\n"
    source = Source(text, "f.cxr")
    for offset in range(len(text) + 2):
        clamped = min(offset, len(text))
        span = source.point(offset)
        assert span.line == text.count("\n", 0, clamped) + 1
        assert span.column == clamped - (text.rfind("\n", 0, clamped) + 1) + 1
    assert [source.line_text(n) for n in range(6)] == ["", "ab", "cd", "", "\tx", ""]
