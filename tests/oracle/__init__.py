"""A naive pandas reference builder for MIMIC-CXR-VQA, written straight from pipeline.md §1–§6.

The oracle reads a PhysioNet source tree and the released question files and returns the
records ``cxrvqa build`` must produce. It mirrors the published builder's style (row tables,
stable multi-column sorts, ``drop_duplicates(keep="last")``, a dense cross join, one boolean
mask per question) and is never optimised. It imports nothing from ``cxrvqa`` on purpose: the
fidelity tests compare two independent readings of the same contract.
"""

from __future__ import annotations

from .builder import Reference, build_reference, reference_ans2idx
from .errors import OracleError

__all__ = ["OracleError", "Reference", "build_reference", "reference_ans2idx"]
