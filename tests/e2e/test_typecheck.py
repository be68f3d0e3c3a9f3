"""Type checking: mypy finds nothing in the package, and a user's mypy sees its annotations.

mypy runs as ``pyproject.toml``'s ``[tool.mypy]`` configures it (strict, with a few per-module
overrides for numpy/pyarrow code), in a subprocess with a fresh cache (~10 s on 2 cores).
The tools come with the ``test`` extra; without them the tests are skipped.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _skip_reason() -> str | None:
    if importlib.util.find_spec("mypy") is None:
        return "mypy is not installed (pip install -e '.[test]')"
    for stubs in ("pandas-stubs", "types-tqdm"):
        try:
            version(stubs)
        except PackageNotFoundError:
            return f"{stubs} is not installed (pip install -e '.[test]')"
    # The package is kept clean against numpy 2's bundled annotations. numpy 1.x (the
    # oldest-versions CI run has 1.24) annotates differently: a bare np.ndarray lacks type
    # arguments there, which strict mode reports ~25 times; those are not errors of cxrvqa.
    if int(version("numpy").split(".")[0]) < 2:
        return ("numpy < 2 (the oldest-versions run): its annotations differ from numpy 2's, "
                "which the mypy configuration is checked against")
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


def _mypy(args: list[str], cwd: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(cache), *args],
                          cwd=cwd, capture_output=True, text=True, timeout=600)


def test_the_package_type_checks_clean(tmp_path: Path) -> None:
    result = _mypy([], ROOT, tmp_path / "cache")  # files and options from pyproject.toml
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("Success: no issues found"), result.stdout


def test_a_users_type_checker_reads_the_public_annotations(tmp_path: Path) -> None:
    # From outside the checkout, as a pipeline that installed cxrvqa sees it: without the
    # py.typed marker (PEP 561) mypy ignores the package's annotations and calls it untyped.
    script = tmp_path / "use.py"
    script.write_text(textwrap.dedent("""\
        import cxrvqa

        programs = cxrvqa.load_programs()
        facts = cxrvqa.ImageFacts([("left lung", "pneumonia", "disease")], "PA", "M", {})
        answers: list[str] = cxrvqa.evaluate(programs["program_43"], facts)
        cxrvqa.load_program(42)
        """), encoding="utf-8")
    result = _mypy(["--no-incremental", script.name], tmp_path, tmp_path / "cache")
    lines = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert len(lines) == 1, result.stdout + result.stderr
    assert lines[0].startswith('use.py:6: error: Argument 1 to "load_program"'), lines
