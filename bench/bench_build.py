"""Benchmark: full `cxrvqa build` at several sizes, stage by stage (not a test).

For each size it generates a synthetic PhysioNet tree (cxrvqa.synth) with question
files, then runs the build in a fresh process and records, per stage, wall time,
CPU time and the process's peak RSS (VmHWM); then the same build with the tabular files
removed, so that the silver scene-graph zip is read instead. A summary table gives
throughput and how time and memory grow with the input. Results are appended to
bench/RESULTS.md, so the whole benchmark is one command:

    python bench/bench_build.py                        # 8 K, 24 K and 66.5 K patients
    python bench/bench_build.py --profile              # + a pyinstrument profile of the largest build
    python bench/bench_build.py --sizes 2000 --questions-per-template 20 --results /tmp/r.md
    python bench/bench_build.py --generate-only --sizes 66500   # the real-size tree, no build

66.5 K patients matches the real sources: ~378 K metadata rows, ~230 K frontal images
with scene graphs, 500 gold patients; 2600 questions per template and split give the
published ~377 K questions (fewer where a template runs out of images). The generator
writes the real data's density (~40 KB scene graphs with every field, ~50 label rows
per graph), and every run reports the largest tree's sizes next to the published or
estimated real ones (source-formats.md), in an "input sizes: synthetic vs real" table.
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
import zipfile
from pathlib import Path

from cxrvqa.build.index import load_index
from cxrvqa.build.layout import SourceLayout
from cxrvqa.synth import SynthConfig, SynthManifest, write_questions, write_sources
from cxrvqa.synth.tree import CIG

_CHILD = """
import hashlib, json, os, sys, time
from pathlib import Path
from cxrvqa.build.pipeline import build
from cxrvqa.build.stages import peak_rss_mb
from cxrvqa.build.layout import SourceLayout
root, profile = Path(sys.argv[1]), sys.argv[2]
if profile:
    import pyinstrument
    profiler = pyinstrument.Profiler()
    profiler.start()
started = time.perf_counter()
report = build(SourceLayout.from_root(root), root / "mimiccxrvqa/dataset")
wall = time.perf_counter() - started
if profile:
    profiler.stop()
    Path(profile).write_text(profiler.output_text(unicode=False, color=False))
stages = [[s.name, s.wall, s.cpu, s.peak_rss_mb] for s in report.stages.times]
times = os.times()  # CPU of this process and of its scene-graph reading workers
digest = hashlib.sha256(b"".join((report.output_dir / name).read_bytes()
                                 for name in ("train.json", "valid.json", "test.json", "ans2idx.json")))
print(json.dumps({"stages": stages, "wall": wall, "cpu": sum(times[:4]), "sha256": digest.hexdigest(),
                  "questions": sum(report.counts().values()), "peak_rss_mb": peak_rss_mb()}))
"""


def _run_build(root: Path, profile: Path | None = None) -> dict:
    result = subprocess.run([sys.executable, "-c", _CHILD, str(root), str(profile or "")],
                            check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 24), b""))


def _inputs(root: Path, index_silver: int, index_gold: int) -> dict:
    layout = SourceLayout.from_root(root)
    return {"metadata_rows": _lines(layout.metadata) - 1,
            "label_rows": _lines(layout.silver_labels) - 1,
            "box_rows": _lines(layout.silver_boxes) - 1,
            "silver_images": index_silver, "gold_images": index_gold}


# The real sources' sizes (source-formats.md §2, §3, §3.1, §3.2, §3.6); "~" marks estimates.
REAL_INPUTS = {
    "metadata rows": "377,110",
    "scene graphs": "242,072",
    "avg graph KB": "~42.5 (10.3 GB / 242,072)",
    "uncompressed JSON GB": "~10.3",
    "zip GB": "~1-1.4 (estimate; whole project zip 1.55 GB)",
    "silver label rows": "~10,000,000 (estimate)",
    "box rows": "~8.7 M (242,072 x 36, estimate)",
    "gold label rows": "unknown (8,735,969 bytes)",
    "gold box rows": "25,989",
}


def _tree_sizes(root: Path, manifest: SynthManifest) -> dict:
    """The generated tree's inputs, in the units of REAL_INPUTS."""
    zipped = root / CIG / "silver_dataset" / "scene_graph.zip"
    sizes = {"metadata rows": f"{manifest.images:,}", "scene graphs": f"{manifest.scene_graphs:,}",
             "silver label rows": f"{manifest.silver_label_rows:,}",
             "box rows": f"{manifest.silver_box_rows:,}",
             "gold label rows": f"{manifest.gold_label_rows:,} ({_bytes(root, 'gold_attributes'):,} bytes)",
             "gold box rows": f"{manifest.gold_box_rows:,}"}
    if zipped.exists():
        with zipfile.ZipFile(zipped) as archive:
            json_bytes = sum(info.file_size for info in archive.infolist())
        sizes.update({"avg graph KB": f"{json_bytes / max(1, manifest.scene_graphs) / 1000:.1f}",
                      "uncompressed JSON GB": f"{json_bytes / 1e9:.2f}",
                      "zip GB": f"{zipped.stat().st_size / 1e9:.2f}"})
    return sizes


def _bytes(root: Path, prefix: str) -> int:
    return sum(path.stat().st_size for path in (root / CIG / "gold_dataset").glob(prefix + "*"))


def _sizes_table(result: dict) -> list[str]:
    sizes = result["sizes"]
    lines = [f"Input sizes: synthetic ({result['patients']:,} patients, generated in "
             f"{result['generate_s']['sources']:.0f} s) vs real:\n",
             "| input | synthetic | real |", "|---|---:|---:|"]
    lines += [f"| {name} | {sizes.get(name, 'not written')} | {real} |"
              for name, real in REAL_INPUTS.items()]
    return lines


def generate_size(patients: int, per_template: int, work: Path, with_zip: bool,
                  questions: bool = True) -> tuple[Path, dict]:
    """Write one tree (and its question files); its generation times and input sizes."""
    root = work / f"tree-{patients}"
    shutil.rmtree(root, ignore_errors=True)
    config = SynthConfig(patients=patients, seed=7, questions_per_template=per_template,
                         scene_graphs="zip" if with_zip else "none")
    started = time.perf_counter()
    manifest = write_sources(root, config)
    sources_s = time.perf_counter() - started
    result = {"patients": patients, "sizes": _tree_sizes(root, manifest),
              "generate_s": {"sources": sources_s}}
    if questions:
        index = load_index(SourceLayout.from_root(root))
        write_questions(root, index, config)
        result["inputs"] = _inputs(root, len(index.silver), len(index.gold))
        result["generate_s"]["questions"] = time.perf_counter() - started - sources_s
    return root, result


def bench_size(patients: int, per_template: int, work: Path, with_zip: bool,
               profile: Path | None) -> dict:
    """Build one tree from its tabular files, then (with_zip) from its scene-graph zip alone."""
    root, result = generate_size(patients, per_template, work, with_zip)
    result["tabular"] = _run_build(root)  # the tabular files win over the graphs
    if profile is not None:
        _run_build(root, profile)  # a run of its own: the profiler slows what it measures
    if with_zip:
        shutil.rmtree(SourceLayout.from_root(root).scene_tabular)
        result["zip"] = _run_build(root)
    shutil.rmtree(root)
    return result


def _machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GiB, "
            f"Python {platform.python_version()}")


def _answer_stage(run: dict) -> list:
    return next(s for s in run["stages"] if s[0] == "answer questions")


def _stage_table(results: list[dict]) -> list[str]:
    lines = ["| patients | source | stage | wall s | CPU s | peak RSS MB |",
             "|---:|---|---|---:|---:|---:|"]
    for result in results:
        for source in ("tabular", "zip"):
            run = result.get(source)
            if run is None:
                continue
            for name, wall, cpu, rss in run["stages"]:
                lines.append(f"| {result['patients']:,} | {source} | {name} | {wall:.1f} | "
                             f"{cpu:.1f} | {rss:.0f} |")
            lines.append(f"| {result['patients']:,} | {source} | **whole build** | "
                         f"**{run['wall']:.1f}** | {run['cpu']:.1f} | **{run['peak_rss_mb']:.0f}** |")
    return lines


def _summary_table(results: list[dict]) -> list[str]:
    """Throughput per run, and growth against the smallest size (linear: the ratios match)."""
    lines = ["| patients | silver + gold images | label rows | box rows | questions | source | "
             "whole build s | peak RSS MB | answered q/s (wall) | q/s (CPU) | "
             "input ratio | time ratio | memory ratio |",
             "|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    base = results[0]
    for result in results:
        inputs = result["inputs"]
        for source in ("tabular", "zip"):
            run, first = result.get(source), base.get(source)
            if run is None or first is None:
                continue
            _, wall, cpu, _ = _answer_stage(run)
            size = inputs["box_rows"] + inputs["label_rows"]
            base_size = base["inputs"]["box_rows"] + base["inputs"]["label_rows"]
            lines.append(
                f"| {result['patients']:,} | {inputs['silver_images']:,} + {inputs['gold_images']:,} | "
                f"{inputs['label_rows']:,} | {inputs['box_rows']:,} | {run['questions']:,} | {source} | "
                f"{run['wall']:.1f} | {run['peak_rss_mb']:.0f} | {run['questions'] / wall:,.0f} | "
                f"{run['questions'] / cpu:,.0f} | {size / base_size:.2f} | "
                f"{run['wall'] / first['wall']:.2f} | {run['peak_rss_mb'] / first['peak_rss_mb']:.2f} |")
    return lines


def _agreement(results: list[dict]) -> str:
    """Builds from tabular files and from scene graphs must write the same bytes."""
    pairs = [(r["patients"], r["tabular"]["sha256"], r["zip"]["sha256"]) for r in results if "zip" in r]
    if not pairs:
        return "Outputs (SHA-256 of the four files): " + ", ".join(
            f"{r['patients']:,}: {r['tabular']['sha256'][:12]}" for r in results) + "."
    same = all(tabular == zipped for _, tabular, zipped in pairs)
    return ("Outputs from tabular files and from the scene-graph zip are "
            + ("byte-identical at every size" if same else "**different**") + " (SHA-256 of the four files: "
            + ", ".join(f"{p:,}: {t[:12]}" + ("" if t == z else f" vs {z[:12]}") for p, t, z in pairs)
            + ").")


def _report(results: list[dict], load: tuple[float, float]) -> str:
    generation = "; ".join(
        f"{r['patients']:,} patients: " + ", ".join(f"{k} {v:.0f} s" for k, v in r["generate_s"].items())
        for r in results)
    largest = max(results, key=lambda r: r["patients"])
    return "\n".join([
        f"\n## Run of {time.strftime('%Y-%m-%d %H:%M')}\n",
        f"Machine: {_machine()}; 1-minute load average {load[0]:.1f} before and {load[1]:.1f} after "
        "(other jobs share this machine: wall times are upper bounds, CPU times steadier).",
        f"Generation (not part of the build): {generation}.\n",
        *_sizes_table(largest), "",
        *_summary_table(results), "",
        _agreement(results), "",
        "Per stage (stage CPU and peak RSS are the build process's; the whole-build CPU adds the "
        "scene-graph reading workers):\n",
        *_stage_table(results), ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="8000,24000,66500", help="patients per tree, comma-separated")
    parser.add_argument("--questions-per-template", type=int, default=2600,
                        help="per split (2600 x 48 x 3 ~ 377 K questions, the published size)")
    parser.add_argument("--no-zip", action="store_true", help="skip the builds from scene-graph zips")
    parser.add_argument("--profile", action="store_true",
                        help="profile the largest tabular build with pyinstrument "
                             "(pip install pyinstrument) into bench/profile-build.txt")
    parser.add_argument("--generate-only", action="store_true",
                        help="only generate each tree (scene graphs zipped unless --no-zip) and "
                             "report its input sizes against the real ones; no questions, no build")
    parser.add_argument("--keep", action="store_true", help="keep the generated trees (--generate-only)")
    parser.add_argument("--work", type=Path, default=Path("bench/out"))
    parser.add_argument("--results", type=Path, default=Path("bench/RESULTS.md"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    load_before = os.getloadavg()[0]
    if args.generate_only:
        _generate_only(sizes, args, load_before)
        return
    results = []
    for size in sizes:
        profile = Path("bench/profile-build.txt") if args.profile and size == max(sizes) else None
        results.append(bench_size(size, args.questions_per_template, args.work, not args.no_zip,
                                  profile))
        print(json.dumps(results[-1]), flush=True)
    text = _report(results, (load_before, os.getloadavg()[0]))
    with args.results.open("a", encoding="utf-8") as handle:
        handle.write(text)
    print(text)


def _generate_only(sizes: list[int], args: argparse.Namespace, load_before: float) -> None:
    sections = [f"\n## Generation of {time.strftime('%Y-%m-%d %H:%M')}\n"]
    for size in sizes:
        root, result = generate_size(size, args.questions_per_template, args.work,
                                     not args.no_zip, questions=False)
        if not args.keep:
            shutil.rmtree(root)
        print(json.dumps(result), flush=True)
        sections += [*_sizes_table(result), ""]
    sections.insert(1, f"Machine: {_machine()}; 1-minute load average {load_before:.1f} before and "
                       f"{os.getloadavg()[0]:.1f} after; sources only (no question files), seed 7.\n")
    text = "\n".join(sections)
    with args.results.open("a", encoding="utf-8") as handle:
        handle.write(text)
    print(text)


if __name__ == "__main__":
    main()
