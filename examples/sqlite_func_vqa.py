"""Answer NeuralSQL-style queries with func_vqa over a SQLite table of studies (EHRXQA style).

    cxrvqa demo --out cxrvqa-demo
    python examples/sqlite_func_vqa.py cxrvqa-demo
"""

from __future__ import annotations

import sqlite3
import sys

from cxrvqa.build.index import load_index
from cxrvqa.build.layout import SourceLayout
from cxrvqa.tools.sqlite import register

root = sys.argv[1] if len(sys.argv) > 1 else "cxrvqa-demo"
index = load_index(SourceLayout.from_root(root))

conn = sqlite3.connect(":memory:")
conn.execute("create table studies (subject_id integer, study_id integer)")
conn.executemany("insert into studies values (?, ?)",
                 sorted({(m.subject_id, m.study_id) for m in index.meta.values()}))
vqa = register(conn, index)

with vqa.named_errors():
    count = conn.execute("select count(*) from studies t "
                         "where func_vqa('is there pleural effusion?', t.study_id) = 1").fetchone()[0]
    print(f"studies with pleural effusion: {count}")
    rows = conn.execute("select t.study_id, func_vqa('List all tubes/lines.', t.study_id) as lines "
                        "from studies t where func_vqa('Are there any tubes/lines?', t.study_id) = 1 "
                        "order by t.study_id limit 3").fetchall()
    for study_id, lines in rows:
        print(f"study {study_id}: tubes/lines {lines}")
try:
    with vqa.named_errors():
        conn.execute("select func_vqa('what is the meaning of life?', study_id) from studies").fetchall()
except sqlite3.OperationalError as exc:
    print(f"error: {exc}")
conn.close()
