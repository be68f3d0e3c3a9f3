"""Old import paths of the flat 0.1 layout, kept for one release with a deprecation warning.

``import cxrvqa.pipeline`` (0.1) still works in 0.2 and gives ``cxrvqa.build.pipeline``; a
``DeprecationWarning`` names the new path. The aliases go away in 0.3. Two old module
paths are not aliased: ``cxrvqa.check`` and ``cxrvqa.evaluate`` are public functions, and an
alias module would replace the function on the package.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

__all__ = ["MOVED", "install"]

MOVED: dict[str, str] = {
    # the language
    "source": "lang.source", "nodes": "lang.nodes", "printer": "lang.printer",
    "parser": "lang.parser", "kinds": "lang.kinds", "interpreter": "lang.compiler",
    "answers": "lang.answers", "resources": "lang.resources",
    # the build
    "sources": "build.layout", "loaders": "build.loaders", "questions": "build.questions",
    "scenegraph": "build.scenegraph", "ontology": "build.ontology", "cohorts": "build.cohorts",
    "labels": "build.labels", "splits": "build.splits", "output": "build.output",
    "pipeline": "build.pipeline",
    # the synthetic tree (cxrvqa.synth is now the package itself)
    "synth_cohort": "synth.cohort", "synth_ontology": "synth.ontology",
    "synth_report": "synth.report", "synth_scene": "synth.scene",
    "synth_questions": "synth.questions",
    # the tools
    "generate": "tools.generate", "stats": "tools.stats", "explain": "tools.explain",
    "sqlite": "tools.sqlite", "verify": "tools.verify", "export": "tools.export",
    "download": "tools.download",
}


class _OldPaths(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves ``cxrvqa.<old>`` as the module at its new path."""

    def find_spec(self, fullname: str, path: object = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        package, _, old = fullname.partition(".")
        if package != "cxrvqa" or old not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = f"cxrvqa.{MOVED[spec.name.partition('.')[2]]}"
        warnings.warn(f"{spec.name} moved to {new} in cxrvqa 0.2; the old path goes in 0.3",
                      DeprecationWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module: ModuleType) -> None:
        """The module was imported under its new name already."""


def install() -> None:
    """Put the old-path finder on ``sys.meta_path`` once (after the normal finders)."""
    if not any(isinstance(finder, _OldPaths) for finder in sys.meta_path):
        sys.meta_path.append(_OldPaths())
