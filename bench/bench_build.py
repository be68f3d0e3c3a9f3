"""Benchmark: full `cxrvqa build` at several sizes, stage by stage (not a test).

For each size it generates a synthetic PhysioNet tree (cxrvqa.synth) with question
files, then runs the build in a fresh process and records, per stage, wall time,
CPU time and the process's peak RSS; it also times a build that reads the silver
scene graphs from a zip instead of the tabular files, for the sizes up to --zip-up-to.
Results go to bench/RESULTS.md (one table per run), so the run can be repeated with
one command:

    python bench/bench_build.py                       # 8 K, 24 K and 65 K patients
    python bench/bench_build.py --sizes 2000 --questions-per-template 20

65 K patients is the size of the real data (~240 K frontal images, ~377 K images).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from cxrvqa.pipeline import load_index
from cxrvqa.sources import SourceLayout
from cxrvqa.synth import SynthConfig, write_questions, write_sources

_CHILD = """
import json, sys, time
from pathlib import Path
from cxrvqa.pipeline import build, peak_rss_mb
from cxrvqa.sources import SourceLayout
root = Path(sys.argv[1])
started = time.perf_counter()
report = build(SourceLayout.from_root(root), root / "mimiccxrvqa/dataset")
stages = [[s.name, s.wall, s.cpu, s.peak_rss_mb] for s in report.stages.times]
print(json.dumps({"stages": stages, "wall": time.perf_counter() - started,
                  "questions": sum(report.counts().values()),
                  "peak_rss_mb": peak_rss_mb()}))
"""


def _run_build(root: Path) -> dict:
    result = subprocess.run([sys.executable, "-c", _CHILD, str(root)], check=True,
                            capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _tabular_to_zip(root: Path, config: SynthConfig, zip_root: Path) -> None:
    """The same tree with scene graphs in a zip and no scene_tabular folder."""
    write_sources(zip_root, config.model_copy(update={"scene_graphs": "zip"}))
    shutil.rmtree(SourceLayout.from_root(zip_root).scene_tabular)
    shutil.copytree(root / "mimiccxrvqa", zip_root / "mimiccxrvqa")


def bench_size(patients: int, per_template: int, work: Path, with_zip: bool) -> dict:
    root = work / f"tree-{patients}"
    shutil.rmtree(root, ignore_errors=True)
    config = SynthConfig(patients=patients, seed=7, questions_per_template=per_template)
    started = time.perf_counter()
    write_sources(root, config)
    index = load_index(SourceLayout.from_root(root))
    write_questions(root, index, config)
    generated = time.perf_counter() - started
    result = {"patients": patients, "silver_images": len(index.silver),
              "gold_images": len(index.gold), "generate_s": generated, "tabular": _run_build(root)}
    del index
    if with_zip:
        zip_root = work / f"zip-{patients}"
        shutil.rmtree(zip_root, ignore_errors=True)
        _tabular_to_zip(root, config, zip_root)
        result["zip"] = _run_build(zip_root)
        shutil.rmtree(zip_root)
    shutil.rmtree(root)
    return result


def _machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GiB, "
            f"Python {platform.python_version()}")


def _table(results: list[dict]) -> str:
    lines = ["| patients (silver + gold images) | source | questions | stage | wall s | CPU s | "
             "peak RSS MB |", "|---:|---|---:|---|---:|---:|---:|"]
    for result in results:
        for source in ("tabular", "zip"):
            run = result.get(source)
            if run is None:
                continue
            size = (f"{result['patients']} ({result.get('silver_images', '?')} + "
                    f"{result.get('gold_images', '?')})")
            for name, wall, cpu, rss in run["stages"]:
                lines.append(f"| {size} | {source} | {run['questions']} | {name} | "
                             f"{wall:.1f} | {cpu:.1f} | {rss:.0f} |")
            rate = run["questions"] / next(s[1] for s in run["stages"] if s[0] == "answer questions")
            lines.append(f"| {size} | {source} | {run['questions']} | **whole build** | "
                         f"**{run['wall']:.1f}** | | **{run['peak_rss_mb']:.0f}** |")
            lines.append(f"| {size} | {source} | | answering rate | "
                         f"{rate:,.0f} q/s | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="8000,24000,65000")
    parser.add_argument("--questions-per-template", type=int, default=2600,
                        help="per split (2600 x 48 x 3 ~ 377 K questions, the published size)")
    parser.add_argument("--zip-up-to", type=int, default=24000,
                        help="also build from a scene-graph zip for sizes up to this")
    parser.add_argument("--work", type=Path, default=Path("bench/out"))
    parser.add_argument("--results", type=Path, default=Path("bench/RESULTS.md"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        results.append(bench_size(size, args.questions_per_template, args.work,
                                  size <= args.zip_up_to))
        print(json.dumps(results[-1]), flush=True)
    text = (f"\n## Run of {time.strftime('%Y-%m-%d %H:%M')}\n\nMachine: {_machine()}.\n"
            f"Generation of each tree (not part of the build) took "
            + ", ".join(f"{r['generate_s']:.0f} s ({r['patients']} patients)" for r in results)
            + ".\n\n" + _table(results) + "\n")
    with args.results.open("a", encoding="utf-8") as handle:
        handle.write(text)
    print(text)


if __name__ == "__main__":
    main()
