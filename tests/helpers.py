"""Helpers shared by several test files: a built demo tree and question rendering."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from cxrvqa.build.index import load_index
from cxrvqa.build.layout import DATASET_SUBDIR, SourceLayout
from cxrvqa.build.pipeline import build
from cxrvqa.synth import SynthConfig, write_questions, write_sources
from cxrvqa.vocab import CATEGORY_WORDS, GENDER_WORDS


def built_demo(root: Path, seed: int) -> SimpleNamespace:
    """A minimal synthetic tree (501 patients, 2 questions per template and split), built."""
    config = SynthConfig(patients=501, seed=seed, questions_per_template=2)
    write_sources(root, config)
    layout = SourceLayout.from_root(root)
    index = load_index(layout)
    write_questions(root, index, config)
    build(layout, root / DATASET_SUBDIR, index=index)
    return SimpleNamespace(root=root, layout=layout, index=index, dataset=root / DATASET_SUBDIR)


def render_question(record: dict[str, Any]) -> str:
    """The record's template with its arguments filled in as question text shows them."""
    arguments = record["template_arguments"]
    words = {"category": CATEGORY_WORDS, "gender": GENDER_WORDS}

    def value(match: re.Match[str]) -> str:
        kind, _, number = match.group(1).partition("_")
        raw = arguments[kind][str(int(number or 1) - 1)]
        return words.get(kind, {}).get(raw, raw)
    return re.sub(r"\$\{(\w+)\}", value, record["template"])
