"""Every shell command and Python snippet of README.md runs verbatim, in README order, in a temp folder.

The commands run with ``bash`` from an empty folder, as a reader would type them: the quick start
makes ``./cxrvqa-demo`` and moves into it, and the later sections run there. ``cxrvqa`` and
``python`` are this checkout (a shim on PATH). Inputs a command names as placeholders
(``path/to/SHA256SUMS.txt``, ``preds.jsonl``, ``my_template.cxr``) are made before their section.
What cannot run here (credentials, the network, the full-size benchmarks, the suite itself) is
listed in ``DOCUMENTED_ONLY`` with the reason; a README command that is neither run nor listed,
or a listed command the README no longer has, fails the test.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cxrvqa.cli import main

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
_FENCE = re.compile(r"^```(sh|python)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_HEADING = re.compile(r"^#{2,3} (.+)$", re.MULTILINE)

DOCUMENTED_ONLY = {
    # shell commands, without their trailing comment
    "python -m pytest": "the test suite itself",
    "export PHYSIONET_USERNAME=you": "PhysioNet credentials",
    "cxrvqa download": "PhysioNet credentials and the network",
    "cxrvqa build": "follows `cxrvqa download` in the same block (real sources)",
    "cxrvqa download-images --splits test": "PhysioNet credentials and the network",
    'pip install ".[bench]" && python bench/bench_build.py': "the full-size benchmark (minutes, GBs)",
    "python bench/bench_answer.py": "a benchmark",
    "python bench/bench_build.py": "the full-size benchmark",
    "python bench/bench_original.py --original ORIGINAL_CHECKOUT --original-python "
    "ORIGINAL_VENV/bin/python": "needs the original builder and its own Python",
    "python bench/bench_original.py --original-cpu 49.1": "a benchmark (5 builds of a 1,000-patient tree)",
    "python -m bench.bench_scenegraph": "a benchmark",
    "python bench/bench_answer_build.py TREE": "a benchmark on a tree you name",
    "python bench/bench_recognise.py": "a benchmark",
    "python bench/bench_func_vqa.py": "a benchmark",
}
SNIPPET_IN_PARENT: tuple[str, ...] = (
    # Python snippets, by a line they contain, that run from the folder holding cxrvqa-demo
    # (none at present: every snippet runs in the demo folder, as the quick start leaves you).
)
RUN_INSTEAD = {
    # The package is installed already (this checkout); the rest of the line runs verbatim.
    'pip install ".[test]" && cxrvqa demo': "cxrvqa demo",
}
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
EXPECTED_EXIT = {
    # Without the plot extra, --plot stops with exit code 3 and one line, as the README says.
    "cxrvqa stats mimiccxrvqa/dataset --plot charts/": 0 if HAS_MATPLOTLIB else 3,
}


@dataclass(frozen=True)
class Snippet:
    section: str
    language: str
    text: str


@dataclass(frozen=True)
class Ran:
    section: str
    command: str
    code: int
    stdout: str
    stderr: str
    cwd: Path


def snippets() -> list[Snippet]:
    text = README.read_text(encoding="utf-8")
    headings = [(match.start(), match.group(1)) for match in _HEADING.finditer(text)]
    found = []
    for match in _FENCE.finditer(text):
        section = [title for start, title in headings if start < match.start()][-1]
        found.append(Snippet(section, match.group(1), match.group(2)))
    return found


def shell_commands(snippet: Snippet) -> list[str]:
    """The block's commands, one a line, without trailing ``# comments``."""
    lines = (re.sub(r"\s+#\s.*$", "", line).strip() for line in snippet.text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def documented_only(snippet: Snippet, command: str | None = None) -> bool:
    if command is not None:
        return command in DOCUMENTED_ONLY
    return any(line.strip() in DOCUMENTED_ONLY for line in snippet.text.splitlines())


# --- inputs the README names as placeholders --------------------------------------------

def _prepare_checking(cwd: Path) -> None:
    dataset = cwd / "mimiccxrvqa" / "dataset"
    other = cwd / "path" / "to" / "other" / "dataset"
    other.mkdir(parents=True)
    for name in ("train.json", "valid.json", "test.json", "ans2idx.json"):
        shutil.copyfile(dataset / name, other / name)
    assert main(["verify", "--write-checksums", "--dataset-dir", str(other)]) == 0
    shutil.copyfile(other / "SHA256SUMS.txt", cwd / "path" / "to" / "SHA256SUMS.txt")


def _prepare_predictions(cwd: Path) -> None:
    test = json.loads((cwd / "mimiccxrvqa" / "dataset" / "test.json").read_text())
    lines = [json.dumps({"split": r["split"], "idx": r["idx"], "answer": r["answer"]}) for r in test]
    (cwd / "preds.jsonl").write_text("\n".join(lines) + "\n")
    (cwd / "preds.json").write_text(json.dumps({f"test:{r['idx']}": ["yes"] for r in test}))


def _prepare_template(cwd: Path) -> None:
    text = (ROOT / "examples" / "new_template.cxr").read_text()
    (cwd / "my_template.cxr").write_text(text.replace("program new_template",
                                                      "program my_template"))
    # The section runs from a checkout (examples/authoring) beside a tree made by
    # `cxrvqa demo --out demo`: here the checkout's examples and the demo tree are linked in.
    demo = cwd / "demo"
    demo.mkdir()
    (demo / "physionet.org").symlink_to(cwd / "physionet.org")
    for folder in (cwd, demo):
        (folder / "examples").symlink_to(ROOT / "examples")


PREPARE = {
    "Checking and loading a build": _prepare_checking,
    "Using cxrvqa from other systems": _prepare_predictions,
    "Adding a template": _prepare_template,
}


# --- running ---------------------------------------------------------------------------------

def _environment(bin_dir: Path) -> dict[str, str]:
    bin_dir.mkdir()
    for name, line in (("cxrvqa", f'exec "{sys.executable}" -m cxrvqa "$@"'),
                       ("python", f'exec "{sys.executable}" "$@"')):
        shim = bin_dir / name
        shim.write_text(f"#!/bin/sh\n{line}\n")
        shim.chmod(0o755)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PHYSIONET_")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", PYTHONPATH=str(ROOT),
               MPLBACKEND="Agg")
    return env


def _run_shell(command: str, cwd: Path, env: dict[str, str], where: Path) -> tuple[Ran, Path]:
    # The next command starts where this one ended (a reader's shell keeps its `cd`).
    script = f"{command}\nstatus=$?\npwd > '{where}'\nexit $status\n"
    done = subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    return Ran("", command, done.returncode, done.stdout, done.stderr, cwd), \
        Path(where.read_text().strip())


def _run_python(text: str, cwd: Path, env: dict[str, str]) -> Ran:
    done = subprocess.run([sys.executable, "-c", text], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    return Ran("", text, done.returncode, done.stdout, done.stderr, cwd)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> list[Ran]:
    base = tmp_path_factory.mktemp("readme")
    env = _environment(base / "bin")
    cwd = base / "work"
    cwd.mkdir()
    ran: list[Ran] = []
    prepared: set[str] = set()
    for snippet in snippets():
        if snippet.section in PREPARE and snippet.section not in prepared:
            PREPARE[snippet.section](cwd)
            prepared.add(snippet.section)
        if snippet.language == "python":
            if not documented_only(snippet):
                lines = {line.strip() for line in snippet.text.splitlines()}
                where = cwd.parent if lines & set(SNIPPET_IN_PARENT) else cwd
                result = _run_python(snippet.text, where, env)
                ran.append(Ran(snippet.section, result.command, result.code, result.stdout,
                               result.stderr, where))
            continue
        for command in shell_commands(snippet):
            if documented_only(snippet, command):
                continue
            result, cwd = _run_shell(RUN_INSTEAD.get(command, command), cwd, env, base / "pwd")
            ran.append(Ran(snippet.section, command, result.code, result.stdout, result.stderr,
                           result.cwd))
    return ran


def test_every_readme_command_runs(session: list[Ran]) -> None:
    for ran in session:
        expected = EXPECTED_EXIT.get(ran.command, 0)
        assert ran.code == expected, (
            f"README ({ran.section}): `{ran.command}` exited {ran.code}, expected {expected}\n"
            f"{ran.stdout[-2000:]}\n{ran.stderr[-2000:]}")
        assert "Traceback" not in ran.stderr, ran.stderr
    commands = [ran.command for ran in session]
    assert "cxrvqa demo" not in commands  # it runs through RUN_INSTEAD, as the README's line
    assert 'pip install ".[test]" && cxrvqa demo' in commands
    assert sum(ran.section == "Python API" for ran in session) == 1
    sql = next(ran for ran in session if "func_vqa(" in ran.command)
    assert re.fullmatch(r"\d+ studies with pleural effusion\n", sql.stdout)


def test_allow_lists_name_readme_text() -> None:
    found = snippets()
    shell = {command for s in found if s.language == "sh" for command in shell_commands(s)}
    python_lines = {line.strip() for s in found if s.language == "python"
                    for line in s.text.splitlines()}
    for entry in [*DOCUMENTED_ONLY, *SNIPPET_IN_PARENT]:
        assert entry in shell or entry in python_lines, f"not in README any more: {entry}"
    assert set(RUN_INSTEAD) | set(EXPECTED_EXIT) <= shell
    # The sections a researcher follows have every command run, none only listed.
    for section in ("Quick start", "Checking and loading a build", "New questions and audits",
                    "Using cxrvqa from other systems"):
        commands = [c for s in found if s.section == section and s.language == "sh"
                    for c in shell_commands(s)]
        assert commands and set(commands) & set(DOCUMENTED_ONLY) <= {"python -m pytest"}, section


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_readme_outputs(session: list[Ran]) -> None:
    by_command = {ran.command: ran for ran in session}
    demo = by_command['pip install ".[test]" && cxrvqa demo']
    assert "(answers: yes and no; empty is []" in demo.stdout
    card_run = by_command["cxrvqa stats mimiccxrvqa/dataset --report card.html"]
    card = card_run.cwd / "card.html"
    parser = _Tags()
    parser.feed(card.read_text(encoding="utf-8"))
    assert sum(tag == "svg" for tag, _ in parser.tags) == 6  # no --sources: no agreement chart
    assert not [tag for tag, attrs in parser.tags if tag == "script" or attrs.get("src")]
    perfect = by_command["cxrvqa evaluate --predictions preds.jsonl --gold "
                         "mimiccxrvqa/dataset/test.json"]
    assert "exact-set accuracy  1.0000" in perfect.stdout
    assert "macro F1 (present)  1.0000" in perfect.stdout
    scored = json.loads(by_command["cxrvqa evaluate --predictions preds.json --gold "
                                   "mimiccxrvqa/dataset/test.json --json"].stdout)
    assert 0 < scored["accuracy"] < 1
    paired = by_command["cxrvqa evaluate --predictions preds.jsonl --baseline preds.json --gold "
                        "mimiccxrvqa/dataset/test.json"].stdout
    assert "paired with the baseline preds.json" in paired
    assert re.search(r"\nall +\d+ +1\.0000 +0\.\d{4} +\+0\.\d{4} +\[\+0\.\d{4}, \+0\.\d{4}\]", paired)
    api = next(ran for ran in session if ran.section == "Python API")
    assert re.search(r"BuildReport\(counts=\{'train': \d+, 'valid': \d+, 'test': \d+\}, "
                     r"output_dir='rebuilt', seconds=\d+\.\d\d\)", api.stdout)
    assert (api.cwd / "rebuilt" / "test.json").read_bytes() == (
        api.cwd / "mimiccxrvqa" / "dataset" / "test.json").read_bytes()
    complete = json.loads((card_run.cwd / "new_test.json").read_text())
    assert all(r["image_path"].endswith(f"s{r['study_id']}/{r['image_id']}.jpg") for r in complete)
