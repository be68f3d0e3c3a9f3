"""Explain one answer on hand-made facts and label rows: each step's value and the rows behind it.

    python examples/explain_answer.py

On a built tree, ``explain_from_sources(SourceLayout.from_root("cxrvqa-demo"), record="test:0",
dataset_dir=Path("cxrvqa-demo/mimiccxrvqa/dataset"))`` does the same for a built record.
"""

from __future__ import annotations

import json

from cxrvqa import ImageFacts, load_programs
from cxrvqa.build.ontology import build_ontology
from cxrvqa.synth.ontology import attribute_lines, ontology_json
from cxrvqa.tools.explain import explain
from cxrvqa.vocab import REPORT_OBJECTS

facts = ImageFacts([("left lung", "pneumonia", "disease"),
                    ("left lung", "lung opacity", "anatomicalfinding"),
                    ("left lower lung zone", "lung opacity", "anatomicalfinding")],
                   viewpos="AP", gender="F", boxes={})
# Label rows of the image's report, in file order (row_id = "<study_id>|<sentence index>").
rows = [
    {"row_id": "5001|2", "bbox": "left lung", "categoryID": "disease", "label_name": "pneumonia",
     "relation": 1},
    {"row_id": "5001|1", "bbox": "left lower lung zone", "categoryID": "anatomicalfinding",
     "label_name": "lung opacity", "relation": 1},
]
# The ontology the build uses (here the synthetic tree's semantics files stand in for Chest
# ImaGenome's): among other things, a finding at the lower zone is also one of the lung.
ontology = build_ontology(REPORT_OBJECTS, [tuple(line.split("|")) for line in attribute_lines()],
                          json.loads(ontology_json()))

program = load_programs()["program_13"]
explanation = explain(program, facts, {"category": "anatomicalfinding", "object_1": "left lung",
                                       "object_2": "right lung"},
                      rows=rows, ontology=ontology, labels="silver", image_id="example-image")
print(explanation.render())
