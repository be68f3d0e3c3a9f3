"""Benchmark: func_vqa calls per second inside SQLite, as an EHRXQA-style pipeline makes them (not a test).

Writes and builds a synthetic demo tree (or uses ``--root``, a folder holding ``physionet.org/``
and a build), puts its studies in a ``tb_cxr`` table of a file database, and times:

* one yes/no question and one list question over every study (one statement each);
* every built record's question on its own study (distinct questions: a cold, then a warm cache);
* ``--threads`` threads, each with its own connection and ``register``, sharing the work.

    python bench/bench_func_vqa.py [--root DIR] [--patients N] [--seconds S] [--threads T]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cxrvqa.build.index import SceneIndex, load_index
from cxrvqa.build.layout import SourceLayout
from cxrvqa.cli import main as cli
from cxrvqa.tools.sqlite import register
from cxrvqa.vocab import SPLITS


def database(folder: Path, index: SceneIndex, root: Path) -> Path:
    """A file database with tb_cxr (every study of the index) and rec (every built record)."""
    path = folder / "bench.db"
    conn = sqlite3.connect(path)
    conn.execute("create table tb_cxr (subject_id integer, study_id integer)")
    conn.executemany("insert into tb_cxr values (?, ?)",
                     sorted({(m.subject_id, m.study_id) for m in index.meta.values()}))
    conn.execute("create table rec (question text, study_id integer)")
    for split in SPLITS:
        records = json.loads((root / "mimiccxrvqa" / "dataset" / f"{split}.json").read_text())
        conn.executemany("insert into rec values (?, ?)",
                         [(r["question"], int(r["study_id"])) for r in records])
    conn.commit()
    conn.close()
    return path


def rate(label: str, calls: Callable[[], int], seconds: float) -> None:
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        done += calls()
    print(f"{label}: {done / (time.perf_counter() - started):,.0f} calls/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="a built tree (default: a new demo tree)")
    parser.add_argument("--patients", type=int, default=1000, help="demo size (default: 1000)")
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement (default: 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads (default: 4)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = args.root
        if root is None:
            root = Path(scratch) / "demo"
            with contextlib.redirect_stdout(io.StringIO()):  # the demo's summary is not measured
                if cli(["demo", "--out", str(root), "--patients", str(args.patients)]):
                    raise SystemExit(2)  # the demo said why on stderr
        index = load_index(SourceLayout.from_root(root))
        path = database(Path(scratch), index, root)
        conn = sqlite3.connect(path)
        register(conn, index)
        studies, records = (conn.execute(f"select count(*) from {t}").fetchone()[0]
                            for t in ("tb_cxr", "rec"))
        print(f"{studies} studies, {records} built records")
        for label, question in (("yes/no question x every study", "is there pleural effusion?"),
                                ("list question x every study", "list all abnormalities.")):
            rate(label, lambda q=question: conn.execute(
                "select count(func_vqa(?, study_id)) from tb_cxr", (q,)).fetchone()[0],
                args.seconds)
        cold = sqlite3.connect(path)
        register(cold, index)
        started = time.perf_counter()
        cold.execute("select count(func_vqa(question, study_id)) from rec").fetchone()
        print(f"built records, cold cache: {records / (time.perf_counter() - started):,.0f} calls/s")
        rate("built records, warm cache", lambda: cold.execute(
            "select count(func_vqa(question, study_id)) from rec").fetchone()[0], args.seconds)
        threaded(path, index, args.threads, args.seconds)


def threaded(path: Path, index: SceneIndex, threads: int, seconds: float) -> None:
    counts = [0] * threads

    def work(number: int) -> None:
        conn = sqlite3.connect(path)
        register(conn, index)
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            counts[number] += conn.execute("select count(func_vqa(question, study_id)) from rec "
                                           "where rowid % ? = ?", (threads, number)).fetchone()[0]
        conn.close()
    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print(f"{threads} threads, a connection each: "
          f"{sum(counts) / (time.perf_counter() - started):,.0f} calls/s in all")


if __name__ == "__main__":
    main()
