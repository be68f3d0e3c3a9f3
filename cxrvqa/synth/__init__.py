"""The synthetic PhysioNet tree: every source file a build reads, seeded, shaped like the real ones.

``write_sources`` writes the tree (synth/tree.py, from the cohort, report, scene and
ontology modules); ``write_questions`` adds released-style question files drawn with
the question generator. ``cxrvqa demo`` runs both, then builds.
"""

from cxrvqa.synth.questions import write_questions
from cxrvqa.synth.tree import SynthConfig, SynthManifest, write_sources

__all__ = ["SynthConfig", "SynthManifest", "write_questions", "write_sources"]
