"""Benchmark: `cxrvqa build` against the original builder on one fixture-sized tree (not a test).

Writes a synthetic tree at the real data's density (default 1,000 patients, 15 questions per
template and split: ~1,700 images, 2,160 questions), builds it with `cxrvqa build` in fresh
processes, and reports CPU time (user + sys of the child), wall time and peak RSS. With
``--original`` (a checkout of baeseongsu/mimic-cxr-vqa) and ``--original-python`` (a Python with
the pandas it needs, e.g. pandas 1.5.3, numpy<2, scikit-learn<1.6), the original's
``build_dataset.sh`` runs unchanged on a copy of the same tree, its outputs are compared byte
for byte with ours, and the CPU-time ratio is reported, next to the ratio no build can pass: the
original against a bare Python that only reads the same inputs with pyarrow. Without them,
``--original-cpu`` gives the original's CPU seconds measured before, for the ratio.

    python bench/bench_original.py --original ~/mimic-cxr-vqa --original-python ~/venv-orig/bin/python
    python bench/bench_original.py --original-cpu 53.6 --runs 5
"""

from __future__ import annotations

import argparse
import filecmp
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_build import generate_size  # bench/ is on sys.path when this file runs

from cxrvqa.vocab import SPLITS


def _timed(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> dict[str, float]:
    """Run argv; its CPU seconds (children's user + sys), wall seconds and peak RSS (MiB).

    The peak is the largest of all children so far (what getrusage keeps), so the commands run
    smallest first (the floor, ours, the original), each showing its own or a larger earlier one.
    """
    before = os.times()
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return {"cpu": cpu, "wall": wall,
            "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


# What no build can avoid: start Python and read every input table and question file once, with
# the fastest reader here (pyarrow's multi-threaded CSV reader; json for the question files).
# Its CPU time caps the ratio any build of this tree can reach against the original.
_FLOOR = """
import glob, json
import pyarrow.csv as csv
for path in sorted(glob.glob("physionet.org/**/*.*", recursive=True)):
    if path.endswith((".txt", ".csv", ".csv.gz")):
        tab = path.endswith(".txt")
        csv.read_csv(path, parse_options=csv.ParseOptions(delimiter="\\t" if tab else ","))
for path in sorted(glob.glob("mimiccxrvqa/dataset/_*.json")):
    with open(path, "rb") as handle:
        json.load(handle)
"""


def _run_original(checkout: Path, python: Path, tree: Path, work: Path) -> dict[str, float]:
    copy = work / "original"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(checkout, copy, ignore=shutil.ignore_patterns(".git", "physionet.org"))
    shutil.copytree(tree / "physionet.org", copy / "physionet.org")
    dataset = copy / "mimiccxrvqa" / "dataset"
    dataset.mkdir(parents=True, exist_ok=True)
    for part in (tree / "mimiccxrvqa" / "dataset").glob("_*.json"):
        shutil.copy(part, dataset / part.name)
    shutil.rmtree(copy / "dataset_builder" / "preprocessed_data", ignore_errors=True)
    env = dict(os.environ, PATH=f"{python.parent}{os.pathsep}{os.environ['PATH']}")
    return _timed(["bash", "build_dataset.sh"], copy, env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--questions-per-template", type=int, default=15)
    parser.add_argument("--runs", type=int, default=5, help="cxrvqa builds to time")
    parser.add_argument("--original", type=Path, help="a checkout of baeseongsu/mimic-cxr-vqa")
    parser.add_argument("--original-python", type=Path, help="the Python to run it with")
    parser.add_argument("--original-cpu", type=float, help="the original's CPU seconds, measured before")
    parser.add_argument("--work", type=Path, default=Path("bench/out-original"))
    parser.add_argument("--results", type=Path, default=Path("bench/RESULTS.md"))
    args = parser.parse_args()

    tree, _ = generate_size(args.patients, args.questions_per_template, args.work, with_zip=False)
    # The floor first: run after ours, its peak RSS would be ours (see _timed).
    floor = [_timed([sys.executable, "-c", _FLOOR], tree) for _ in range(args.runs)]
    ours = [_timed([sys.executable, "-m", "cxrvqa", "build"], tree) for _ in range(args.runs)]
    lines = [f"\n## Original builder vs cxrvqa build, {time.strftime('%Y-%m-%d %H:%M')}\n",
             f"Tree: {args.patients:,} patients at the real density, "
             f"{args.questions_per_template} questions per template and split; "
             f"1-minute load average {os.getloadavg()[0]:.1f}.\n",
             "| which | runs | CPU s (median) | CPU s (min) | wall s (median) | peak RSS MiB |",
             "|---|---:|---:|---:|---:|---:|"]
    lines.append(_row("cxrvqa build", ours))
    lines.append(_row("floor: Python + pyarrow reading the inputs, nothing else", floor))
    original_cpu = args.original_cpu
    if args.original is not None:
        if args.original_python is None:
            parser.error("--original needs --original-python")
        original = _run_original(args.original, args.original_python, tree, args.work)
        lines.append(_row("original build_dataset.sh", [original]))
        original_cpu = original["cpu"]
        same = [split for split in SPLITS if filecmp.cmp(
            tree / "mimiccxrvqa" / "dataset" / f"{split}.json",
            args.work / "original" / "mimiccxrvqa" / "dataset" / f"{split}.json", shallow=False)]
        lines.append(f"\nByte-identical outputs: {', '.join(same) or 'none'} (of {', '.join(SPLITS)}).")
    if original_cpu is not None:
        median = statistics.median(run["cpu"] for run in ours)
        lines.append(f"\nCPU-time ratio (original / cxrvqa median): **{original_cpu / median:.1f}x** "
                     f"({original_cpu:.1f} s / {median:.2f} s); reading the inputs alone caps it at "
                     f"{original_cpu / statistics.median(run['cpu'] for run in floor):.0f}x.")
    text = "\n".join(lines) + "\n"
    with args.results.open("a", encoding="utf-8") as handle:
        handle.write(text)
    print(text)


def _row(which: str, runs: list[dict[str, float]]) -> str:
    cpu = [run["cpu"] for run in runs]
    return (f"| {which} | {len(runs)} | {statistics.median(cpu):.2f} | {min(cpu):.2f} | "
            f"{statistics.median(run['wall'] for run in runs):.2f} | "
            f"{max(run['peak_mb'] for run in runs):.0f} |")


if __name__ == "__main__":
    main()
