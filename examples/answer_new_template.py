"""Answer the example template (examples/new_template.cxr) through the public API.

    python examples/answer_new_template.py
"""

from __future__ import annotations

from pathlib import Path

import cxrvqa

program = cxrvqa.load_program(Path(__file__).with_name("new_template.cxr"))  # parse + check
facts = cxrvqa.ImageFacts(
    [("left lung", "pleural effusion", "anatomicalfinding"),
     ("left lung", "pneumonia", "disease"),
     ("left lung", "atelectasis", "anatomicalfinding"),
     ("left lung", "low lung volumes", "technicalassessment"),
     ("right lung", "pneumonia", "disease")],
    viewpos="AP", gender="F", boxes={})

# By parameter name ...
print("left lung:", cxrvqa.evaluate(program, facts, object="left lung"))
# ... or as a question record, the way a dataset pipeline does, next to the bundled programs.
programs = {**cxrvqa.load_programs(), program.name: program}
record = {"template_program": program.name, "template_arguments": {"object": {"0": "right lung"}}}
print("right lung:", cxrvqa.answer(programs, record, facts))
