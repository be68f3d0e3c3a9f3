"""Score a per-template majority baseline (learned on train.json) on test.json with cxrvqa.tools.evaluate,
then compare it with always answering "yes", record by record (paired, McNemar's exact test).

    cxrvqa demo --out cxrvqa-demo
    python examples/evaluate_predictions.py cxrvqa-demo/mimiccxrvqa/dataset
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

from cxrvqa.tools.evaluate import compare, evaluate

dataset = Path(sys.argv[1] if len(sys.argv) > 1 else "cxrvqa-demo/mimiccxrvqa/dataset")
train = json.loads((dataset / "train.json").read_text())
test = json.loads((dataset / "test.json").read_text())

# The most common answer of each template program in train: a floor any model should beat.
votes: dict[str, Counter[str]] = {}
for record in train:
    votes.setdefault(record["template_program"], Counter())[json.dumps(record["answer"])] += 1
majority = {program: json.loads(counts.most_common(1)[0][0]) for program, counts in votes.items()}

# Predictions in the "split:idx" -> answers shape (a list of {"split", "idx", "answer"} works too).
predictions = {f"{r['split']}:{r['idx']}": majority.get(r["template_program"], ["yes"]) for r in test}
always_yes = {f"{r['split']}:{r['idx']}": ["yes"] for r in test}
with tempfile.TemporaryDirectory() as folder:
    path, baseline = Path(folder) / "predictions.json", Path(folder) / "always_yes.json"
    path.write_text(json.dumps(predictions))
    baseline.write_text(json.dumps(always_yes))
    report = evaluate(path, dataset / "test.json")
    print(report.render())
    # The difference's interval and McNemar's p come from the questions only one of them gets right.
    for paired in compare(path, baseline, dataset / "test.json").paired:
        difference, low, high = paired.difference
        print(f"{paired.name}: {difference:+.3f} [{low:+.3f}, {high:+.3f}], p = {paired.p_value:.3g}")
