"""Fault injection: a process killed at any write, fsync or rename of an output set leaves all-old or
all-new files once the next command has run, and no temporary survives it.

A "kill" is modelled in-process: from the N-th watched operation on, every watched operation
(write, fsync, rename, unlink, rmtree) raises ``_Killed``, so no cleanup code can act, as after
SIGKILL. Then the watch is lifted and the next command runs.
"""

from __future__ import annotations

import os
import shutil
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cxrvqa.build import commit
from cxrvqa.build.commit import JOURNAL, MANIFEST, is_temporary, settle
from cxrvqa.build.layout import SCENE_TABULAR
from cxrvqa.build.output import write_files_atomically
from cxrvqa.build.pipeline import build
from cxrvqa.build.scenegraph import write_scene_tabular
from cxrvqa.cli import main
from cxrvqa.synth import SynthConfig, write_sources
from tests.helpers import built_demo

BUILT = ("train.json", "valid.json", "test.json", "ans2idx.json")
TABLES = ("attribute_relations_tabular.txt", "bbox_objects_tabular.txt")


class _Killed(BaseException):
    """The simulated SIGKILL (a BaseException, like the real interruption a handler might see)."""


class _Watch:
    """Counts watched operations; from operation ``kill_at`` on, each one raises ``_Killed``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, kill_at: int | None) -> None:
        self.kinds: list[str] = []
        self.kill_at = kill_at
        for module, name in ((os, "replace"), (os, "fsync"), (os, "unlink"), (os, "rmdir"),
                             (shutil, "rmtree")):
            monkeypatch.setattr(module, name, self._wrap(name, getattr(module, name)))
        write = self._wrap("write", commit._HashingWriter.write)
        monkeypatch.setattr(commit._HashingWriter, "write", lambda writer, data: write(writer, data))

    def _wrap(self, kind: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def watched(*args: Any, **kwargs: Any) -> Any:
            self.kinds.append(kind)
            if self.kill_at is not None and len(self.kinds) >= self.kill_at:
                raise _Killed
            return function(*args, **kwargs)
        return watched


def _run_killed(monkeypatch: pytest.MonkeyPatch, kill_at: int | None,
                action: Callable[[], Any]) -> list[str]:
    """Run ``action`` with the watch on; the kinds of the watched operations it reached."""
    with monkeypatch.context() as patch:
        watch = _Watch(patch, kill_at)
        try:
            action()
        except _Killed:
            pass
    return watch.kinds


def _state(folder: Path, names: tuple[str, ...], old: dict[str, bytes],
           new: dict[str, bytes]) -> set[str]:
    """For each file: "old", "new" or "other"."""
    kinds = set()
    for name in names:
        data = (folder / name).read_bytes()
        kinds.add("old" if data == old[name] else "new" if data == new[name] else "other")
    return kinds


def _leftovers(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if is_temporary(name) or name == JOURNAL]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    return built_demo(tmp_path_factory.mktemp("faults") / "demo", seed=5)


def _old_set(names: tuple[str, ...]) -> dict[str, bytes]:
    return {name: f"old {name}\n".encode() for name in names}


def _points(kinds: list[str]) -> Iterator[int]:
    """Operation numbers to kill at: every fsync, rename and removal; the first and last writes.

    Writes in the middle of a streamed table are all alike (the commit has not begun).
    """
    writes = [number for number, kind in enumerate(kinds, start=1) if kind == "write"]
    chosen = set(writes[:2] + writes[-1:])
    return iter(sorted(chosen | {number for number, kind in enumerate(kinds, start=1)
                                 if kind != "write"}))


def _old_set_then_build(demo: SimpleNamespace, out: Path
                        ) -> tuple[dict[str, bytes], dict[str, bytes], Callable[[], None]]:
    """The demo's built files, an old set written to ``out``, and a build of the new into it."""
    new = {name: (demo.dataset / name).read_bytes() for name in BUILT}
    old = _old_set(BUILT)
    write_files_atomically(out, old, manifest=True)
    return new, old, lambda: build(demo.layout, demo.dataset, out, index=demo.index)


def _killed_at_rename(monkeypatch: pytest.MonkeyPatch, out: Path, old: dict[str, bytes],
                      run: Callable[[], None], rename: int) -> None:
    """Over a fresh old set, ``run`` killed at its ``rename``-th rename (0 is the first)."""
    kinds = _run_killed(monkeypatch, None, run)
    shutil.rmtree(out)
    write_files_atomically(out, old, manifest=True)
    _run_killed(monkeypatch, [n for n, kind in enumerate(kinds, 1) if kind == "replace"][rename],
                run)


def test_build_killed_at_any_point_is_all_old_or_all_new(
        demo: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    new, old, run = _old_set_then_build(demo, out)
    kinds = _run_killed(monkeypatch, None, run)
    # 4 staged files, the manifest, their fsyncs, the journal and 5 renames
    assert kinds.count("write") == 4 and kinds.count("replace") == 6
    for kill_at in _points(kinds):
        shutil.rmtree(out)
        write_files_atomically(out, old, manifest=True)
        _run_killed(monkeypatch, kill_at, run)
        seen = _state(out, BUILT, old, new)
        if len(seen) != 1:
            # A mixed set only exists under a complete journal, which the next command finishes.
            assert (out / JOURNAL).is_file(), (kill_at, seen)
        assert main(["verify", "--dataset-dir", str(out)]) == 0, kill_at
        assert _state(out, BUILT, old, new) in ({"old"}, {"new"}), kill_at
        assert not (out / JOURNAL).exists(), kill_at
        # The next build removes any temporary the killed one left, and commits the new set.
        build(demo.layout, demo.dataset, out, index=demo.index)
        assert _leftovers(out) == [], kill_at
        assert _state(out, BUILT, old, new) == {"new"}


@pytest.mark.parametrize("reader", ["evaluate", "stats", "download-images"])
def test_every_reader_finishes_an_interrupted_commit_first(
        reader: str, demo: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Killed after the journal and the first rename: train.json is new, the rest old. Before,
    # only build, export and verify finished the commit; evaluate, stats and download-images
    # read the mixed set (here the old files are not even JSON, so they failed).
    out = tmp_path / "out"
    new, old, run = _old_set_then_build(demo, out)
    _killed_at_rename(monkeypatch, out, old, run, 2)
    assert (out / JOURNAL).is_file() and len(_state(out, BUILT, old, new)) == 2
    (tmp_path / "preds.json").write_text("[]")
    argv = {"evaluate": ["evaluate", "--predictions", str(tmp_path / "preds.json"),
                         "--gold", str(out / "test.json")],
            "stats": ["stats", str(out)],
            "download-images": ["download-images", "--dataset-dir", str(out), "--root",
                                str(tmp_path), "--dry-run"]}[reader]
    assert main(argv) == 0, capsys.readouterr().err
    assert not (out / JOURNAL).exists()
    assert _state(out, BUILT, old, new) == {"new"}


def _paused_settle(monkeypatch: pytest.MonkeyPatch, folder: Path
                   ) -> tuple[threading.Thread, threading.Event, list[bool]]:
    """A thread settling ``folder`` that stops once it has read the journal, until released."""
    has_read, release, result = threading.Event(), threading.Event(), []
    read_journal = commit._read_journal

    def read_then_wait(directory: Path) -> list[dict[str, str]] | None:
        entries = read_journal(directory)
        has_read.set()
        release.wait(10)
        return entries

    monkeypatch.setattr(commit, "_read_journal", read_then_wait)
    thread = threading.Thread(target=lambda: result.append(settle(folder)))
    thread.start()
    assert has_read.wait(10)
    monkeypatch.setattr(commit, "_read_journal", read_journal)  # for every later reader
    return thread, release, result


def test_a_second_settle_waits_and_finds_the_commit_finished(
        demo: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two readers settle one interrupted commit: the second waits for the first, then finds
    # nothing left to do (before the journal lock both renamed and removed at once).
    out = tmp_path / "out"
    new, old, run = _old_set_then_build(demo, out)
    _killed_at_rename(monkeypatch, out, old, run, 1)
    first, release, first_result = _paused_settle(monkeypatch, out)
    second_result: list[bool] = []
    second = threading.Thread(target=lambda: second_result.append(settle(out)))
    second.start()
    second.join(0.3)
    waited = second.is_alive()
    release.set()
    first.join(10)
    second.join(10)
    assert waited and first_result == [True] and second_result == [False]
    assert _state(out, BUILT, old, new) == {"new"} and _leftovers(out) == []


def test_a_settle_never_removes_the_journal_of_a_later_commit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A reader settles commit 1 while commit 2 journals and is killed before its renames.
    # Commit 2's journal must survive the reader, so that the next command rolls it forward;
    # before the journal lock the reader removed it, and the folder kept commit 1's files.
    out = tmp_path / "out"
    names = ("a.json", "b.json")
    write_files_atomically(out, {name: b"0" for name in names})

    def staged_commit(content: bytes) -> list[dict[str, str]]:
        entries = []
        for name in names:
            staged = f".cxrvqa-{os.getppid()}-{os.urandom(4).hex()}.{name}.tmp"  # a live pid
            (out / staged).write_bytes(content)
            entries.append({"staged": staged, "final": name, "sha256": ""})
        return entries

    commit._place_journal(out, staged_commit(b"1"))
    later = staged_commit(b"2")
    reader, release, _ = _paused_settle(monkeypatch, out)
    writer = threading.Thread(target=commit._place_journal, args=(out, later))
    writer.start()
    writer.join(0.3)  # without the lock commit 2's journal is in place by now
    release.set()
    reader.join(10)
    writer.join(10)
    assert (out / JOURNAL).is_file()
    assert settle(out)  # the next command
    assert {(out / name).read_bytes() for name in names} == {b"2"} and _leftovers(out) == []


def test_verify_names_a_mixed_set(demo: SimpleNamespace, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    build(demo.layout, demo.dataset, out, index=demo.index)
    (out / "valid.json").write_bytes(b"[]")  # a file from another build
    assert main(["verify", "--dataset-dir", str(out)]) == 1
    report = capsys.readouterr().out
    assert "mismatch  valid.json" in report and MANIFEST in report
    assert "mismatch  train.json" not in report


def test_scene_tabular_killed_at_any_point_is_all_old_or_all_new(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "tree"
    write_sources(root, SynthConfig(patients=501, seed=3, scene_graphs="dir"))
    chest = root / "physionet.org" / "files" / "chest-imagenome" / "1.0.0"
    folder = chest / SCENE_TABULAR
    # A few graphs are enough (each run reads all of them, twice per kill point).
    graphs = sorted((chest / "silver_dataset" / "scene_graph").iterdir())
    for graph in graphs[12:]:
        graph.unlink()

    def run() -> None:
        write_scene_tabular(chest, attribute_columns=(), box_columns=(), workers=1)

    run()
    new = {name: (folder / name).read_bytes() for name in TABLES}
    old = _old_set(TABLES)
    kinds = _run_killed(monkeypatch, None, run)
    for kill_at in _points(kinds):
        write_files_atomically(folder, old)
        _run_killed(monkeypatch, kill_at, run)
        seen = _state(folder, TABLES, old, new)
        assert len(seen) == 1 or (folder / JOURNAL).is_file(), (kill_at, seen)
        settle(folder)  # what the next build's reader does first
        assert _state(folder, TABLES, old, new) in ({"old"}, {"new"}), kill_at
        run()  # the next scene-tabular run removes the killed run's temporaries
        assert _leftovers(folder) == [], kill_at


def test_export_killed_at_any_point_leaves_no_partial_folder(
        demo: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pyarrow")
    out = tmp_path / "export"

    def run() -> None:
        main(["export", "--format", "parquet", "--out", str(out), "--dataset-dir",
              str(demo.dataset)])

    kinds = _run_killed(monkeypatch, None, run)
    complete = sorted(os.listdir(out))
    for kill_at in _points(kinds):
        shutil.rmtree(out, ignore_errors=True)
        _run_killed(monkeypatch, kill_at, run)
        # Either no export (or the empty folder the user made) or the complete one.
        assert not out.exists() or sorted(os.listdir(out)) in ([], complete), kill_at
        shutil.rmtree(out, ignore_errors=True)
        run()  # the next export removes the killed one's staging folder
        assert [name for name in os.listdir(tmp_path) if is_temporary(name)] == [], kill_at
        assert sorted(os.listdir(out)) == complete


def test_output_path_problems_are_found_before_anything_is_replaced(
        demo: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    old = _old_set(BUILT)
    write_files_atomically(out, {name: old[name] for name in BUILT if name != "valid.json"})
    (out / "valid.json").mkdir()
    argv = ["build", "--physionet-root", str(demo.root), "--dataset-dir", str(demo.dataset)]
    assert main([*argv, "--output-dir", str(out)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{out / 'valid.json'}: is a folder" in err
    assert (out / "train.json").read_bytes() == old["train.json"]
    (tmp_path / "file").write_text("x")
    for target in (tmp_path / "file", tmp_path / "file" / "below"):
        assert main([*argv, "--output-dir", str(target)]) == 3
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(target) in err and "Traceback" not in err


def test_two_exports_into_one_folder_the_later_one_says_it_is_taken(
        demo: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Two exports to one new folder: both find it free, the first publishes, the second's
    # rename meets a full folder. Before: "cxrvqa: error: <out>: Directory not empty".
    pytest.importorskip("pyarrow")
    from cxrvqa.tools import export

    out = tmp_path / "export"
    real = export._write_parquet

    def the_other_export_first(tables: Any, folder: Path) -> None:
        real(tables, folder)
        out.mkdir()
        (out / "train.parquet").write_bytes(b"the other export's")

    monkeypatch.setattr(export, "_write_parquet", the_other_export_first)
    assert main(["export", "--format", "parquet", "--out", str(out), "--dataset-dir",
                 str(demo.dataset)]) == 3
    err = capsys.readouterr().err
    assert err == f"cxrvqa: error: {out}: exists and is not an empty folder; choose a new " \
                  f"output folder\n"
    assert os.listdir(out) == ["train.parquet"]
    assert [name for name in os.listdir(tmp_path) if is_temporary(name)] == []


@pytest.mark.parametrize("link", ["dangling", "loop"])
def test_an_output_folder_that_is_a_broken_link_is_named_so(
        link: str, demo: SimpleNamespace, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Before: "cannot create the folder: a part of the path is a file", for a path with no file.
    out = tmp_path / "out"
    if link == "dangling":
        out.symlink_to(tmp_path / "gone" / "built")
    else:
        out.symlink_to(tmp_path / "other")
        (tmp_path / "other").symlink_to(out)
    assert main(["build", "--physionet-root", str(demo.root), "--dataset-dir",
                 str(demo.dataset), "--output-dir", str(out)]) == 3
    err = capsys.readouterr().err
    assert err == f"cxrvqa: error: {out}: is a link to nowhere (dangling, or a loop); " \
                  f"expected a folder to write into\n"
    assert not (tmp_path / "gone").exists()


def test_a_device_or_fifo_named_as_an_output_file_is_never_replaced(
        demo: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A file is committed by renaming onto its name, which replaces whatever is there. Before,
    # `generate --out /dev/null` run as root (a container) replaced the system's /dev/null
    # with a regular file; a FIFO named as --out was replaced likewise.
    specials = [tmp_path / "fifo"]
    os.mkfifo(specials[0])
    if os.geteuid() == 0:  # only root may make a device node (a copy of /dev/null's)
        specials.append(tmp_path / "null")
        os.mknod(specials[1], 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    for special in specials:
        kind = os.lstat(special).st_mode
        for argv in (["generate", "--physionet-root", str(demo.root), "--split", "test",
                      "--per-template", "1", "--templates", "program_1", "--out", str(special)],
                     ["stats", str(demo.dataset), "--report", str(special)]):
            assert main(argv) == 3, argv
            err = capsys.readouterr().err
            assert err == f"cxrvqa: error: {special}: is a device, FIFO or socket, which " \
                          f"writing here would replace; expected a file (or nothing) there\n"
            assert os.lstat(special).st_mode == kind
    assert [name for name in os.listdir(tmp_path) if is_temporary(name)] == []


def test_a_second_writer_finishes_an_unsettled_commit_before_replacing_its_journal(
        tmp_path: Path) -> None:
    # Writer 1 journals a.json and has not settled yet when writer 2 journals b.json. Before,
    # writer 2's journal replaced writer 1's: a.json never landed though writer 1 succeeded.
    out = tmp_path / "out"
    write_files_atomically(out, {"a.json": b"0", "b.json": b"0"})

    def staged(name: str, content: bytes) -> list[dict[str, str]]:
        temporary = f".cxrvqa-{os.getppid()}-{os.urandom(4).hex()}.{name}.tmp"  # a live pid
        (out / temporary).write_bytes(content)
        return [{"staged": temporary, "final": name, "sha256": ""}]

    commit._place_journal(out, staged("a.json", b"1"))
    commit._place_journal(out, staged("b.json", b"2"))
    assert (out / "a.json").read_bytes() == b"1"  # writer 1's commit, finished first
    assert settle(out)  # writer 2's own settle
    assert [(out / name).read_bytes() for name in ("a.json", "b.json")] == [b"1", b"2"]
    assert _leftovers(out) == []


def test_two_staged_sets_of_one_process_keep_each_others_files(tmp_path: Path) -> None:
    # Two StagedFiles on one folder in one process (two threads, or a caller's nesting): the
    # second one's clean-up of this process's temporaries removed the first one's staged file,
    # and the first then "committed" nothing.
    out = tmp_path / "out"
    write_files_atomically(out, {"a.json": b"old", "b.json": b"old"})
    first = commit.StagedFiles(out, ("a.json",))
    first.write("a.json", b"new a")
    with commit.StagedFiles(out, ("b.json",)) as second:
        second.write("b.json", b"new b")
    first.__exit__(None)
    assert [(out / name).read_bytes() for name in ("a.json", "b.json")] == [b"new a", b"new b"]
    assert _leftovers(out) == []
