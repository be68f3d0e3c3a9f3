"""Benchmark reading Chest ImaGenome scene graphs from a zip (issue 4: 242 K graphs in < 10 min).

Generates a zip of synthetic scene graphs shaped like the real ones (all top-level keys, 36 boxes,
~15 report regions with parallel phrase lists and cues, comparison relationships; ~40 KB of JSON
per graph, like the real 10.3 GB / 242 K), times ``read_scene_graphs`` with each worker count and
with only the columns a build reads, and ``write_scene_tabular``; then times writing a synthetic
tree (``cxrvqa.synth.write_sources``) without and with its scene-graph zip (issue 6). Each step
runs in a fresh process; results are extrapolated to the full archive and appended as a section
to ``bench/RESULTS-scenegraph.md``.

    python -m bench.bench_scenegraph [--graphs 20000] [--workers 1,2] [--synth-patients 5750]
    (from the repository root)
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import random
import resource
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
from pydantic import TypeAdapter

from cxrvqa.build.scenegraph import (
    SceneGraphSource,
    read_scene_graphs,
    write_scene_tabular,
)
from cxrvqa.build.stages import peak_rss_mb
from cxrvqa.synth import SynthConfig, write_sources
from cxrvqa.vocab import ATTRIBUTES_BY_CATEGORY, BBOX_NAMES, REPORT_OBJECTS

REAL_GRAPHS = 242_072
TARGET_SECONDS = 600
# What a build reads of each table (pipeline.load_silver_rows), and its repeated strings.
BUILD_COLUMNS = {
    "attribute_columns": ("image_id", "row_id", "bbox", "categoryID", "label_name", "relation"),
    "box_columns": ("object_id", "bbox_name", "x1", "x2", "width")}
BUILD_CATEGORICAL = ("image_id", "bbox", "categoryID", "label_name", "bbox_name")
# Indented like json.dumps(indent=2) (same bytes), but several times faster to produce.
_INDENTED_JSON = TypeAdapter(dict[str, Any])
SENTENCES = (
    "There is {sev} {label} in the {region}.",
    "No evidence of {label} at the {region}.",
    "Compared to the prior study, the {label} in the {region} is {change}.",
    "FINDINGS: Heart size is normal. {sev} {label} projecting over the {region}.",
    "IMPRESSION:\n{label} at the {region}, likely {sev}, clinical correlation advised.",
)
CUES = {"comparison": ("no change", "improved", "worsened"), "temporal": ("acute", "chronic"),
        "severity": ("hedge", "mild", "moderate", "severe"),
        "texture": ("opacity", "alveolar", "interstitial", "calcified", "lucency")}


def _dicom_id(rng: random.Random) -> str:
    return "-".join(f"{rng.getrandbits(32):08x}" for _ in range(5))


def _box(rng: random.Random, image_id: str, name: str) -> dict[str, object]:
    x1, y1 = rng.randint(0, 150), rng.randint(0, 150)
    x2, y2 = x1 + rng.randint(10, 70), y1 + rng.randint(10, 70)
    ratio = 224 / rng.choice((2544, 3056, 3050))
    return {"object_id": f"{image_id}_{name}", "x1": x1, "y1": y1, "x2": x2, "y2": y2,
            "width": x2 - x1, "height": y2 - y1, "bbox_name": name,
            "synsets": [f"C{rng.randint(0, 9_999_999):07d}"], "name": name.capitalize(),
            "original_x1": round(x1 / ratio, 1), "original_y1": round(y1 / ratio, 1),
            "original_x2": round(x2 / ratio, 1), "original_y2": round(y2 / ratio, 1),
            "original_width": round((x2 - x1) / ratio, 1),
            "original_height": round((y2 - y1) / ratio, 1)}


def _cues(rng: random.Random, kind: str) -> list[str]:
    return [f"{kind}|yes|{rng.choice(CUES[kind])}"] if rng.random() < 0.3 else []


def _region(rng: random.Random, image_id: str, study_id: int, name: str) -> dict[str, object]:
    phrases = rng.choices((1, 1, 2, 2, 3))[0]
    labels, texts, indices = [], [], sorted(rng.sample(range(1, 25), phrases))
    for _ in range(phrases):
        category = rng.choice(("anatomicalfinding", "disease", "tubesandlines", "device"))
        label = rng.choice(ATTRIBUTES_BY_CATEGORY[category])
        yes = rng.random() < 0.7
        labels.append([f"{category}|{'yes' if yes else 'no'}|{label}",
                       f"nlp|yes|{'abnormal' if yes else 'normal'}"][:rng.choice((1, 2, 2))])
        texts.append(rng.choice(SENTENCES).format(
            sev=rng.choice(CUES["severity"]), label=label, region=name,
            change=rng.choice(CUES["comparison"])))
    region: dict[str, object] = {name: True, "bbox_name": name,
                                 "synsets": [f"C{rng.randint(0, 9_999_999):07d}"],
                                 "name": name.capitalize(), "attributes": labels,
                                 "attributes_ids": [[f"C{rng.randint(0, 9_999_999):07d}"
                                                     for _ in row] for row in labels],
                                 "phrases": texts,
                                 "phrase_IDs": [f"{study_id}|{index}" for index in indices],
                                 "sections": ["finalreport"] * phrases}
    for kind in CUES:
        region[f"{kind}_cues"] = [_cues(rng, kind) for _ in range(phrases)]
    region["object_id"] = f"{image_id}_{name}"
    return region


def _relationship(rng: random.Random, image_id: str, name: str) -> dict[str, object]:
    previous = f"{_dicom_id(rng)}_{name}"
    return {"relationship_id": f"{image_id}_{name}|{previous}", "subject_id": f"{image_id}_{name}",
            "object_id": previous, "bbox_name": name,
            "relationship_names": ["comparison|yes|no change"],
            "phrase": "Unchanged compared to prior.", "synsets": []}


def make_graph(rng: random.Random) -> dict[str, object]:
    """One synthetic scene graph with the real top-level keys and realistic sizes."""
    image_id, study_id = _dicom_id(rng), rng.randint(50_000_000, 59_999_999)
    regions = rng.sample(REPORT_OBJECTS, rng.randint(10, 24))
    return {
        "image_id": image_id, "viewpoint": rng.choice(("AP", "PA")),
        "patient_id": rng.randint(10_000_000, 19_999_999), "study_id": study_id,
        "gender": rng.choice("MF"), "age_decile": rng.choice(("40-50", "60-70", "70-80")),
        "reason_for_exam": "___-year-old with shortness of breath, evaluate for pneumonia.",
        "StudyOrder": rng.randint(1, 20), "StudyDateTime": "2184-03-12 14:05:30",
        "objects": [_box(rng, image_id, name) for name in BBOX_NAMES],
        "attributes": [_region(rng, image_id, study_id, name) for name in regions],
        "relationships": [_relationship(rng, image_id, name)
                          for name in rng.sample(BBOX_NAMES, rng.randint(0, 6))],
    }


def write_zip(path: Path, graphs: int, seed: int) -> int:
    """Write ``graphs`` synthetic graphs as ``scene_graph/<id>_SceneGraph.json``; JSON bytes."""
    rng = random.Random(seed)
    total = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for _ in range(graphs):
            graph = make_graph(rng)
            text = _INDENTED_JSON.dump_json(graph, indent=2)
            total += len(text)
            archive.writestr(f"scene_graph/{graph['image_id']}_SceneGraph.json", text)
    return total


class Measure(NamedTuple):
    wall: float
    cpu: float
    start_mib: float
    main_mib: float
    worker_mib: float
    counts: tuple[int, ...]


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _run_step(run: Callable[[], tuple[int, ...]], sender: Connection) -> None:
    # VmHWM of a forked process starts from its own resident pages, not its parent's peak.
    start = peak_rss_mb()
    wall, cpu = time.perf_counter(), _cpu_seconds()
    counts = run()
    wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
    # ru_maxrss is in KiB on Linux: the largest peak of the pool workers this step started.
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    sender.send(Measure(wall, cpu, start, peak_rss_mb(), workers, counts))


def measure(run: Callable[[], tuple[int, ...]]) -> Measure:
    """Run one step in a fresh process, so that its peak memory and CPU time are its own."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_run_step, args=(run, sender))
    process.start()
    measured = receiver.recv()
    process.join()
    return measured


def read_step(source: SceneGraphSource, workers: int, columns: dict[str, Any]) -> tuple[int, int]:
    scan = read_scene_graphs(source, workers=workers, **columns)
    return len(scan.attributes), len(scan.boxes)


def write_step(root: Path, workers: int) -> tuple[int, int]:
    scan = write_scene_tabular(root, workers=workers, attribute_columns=(), box_columns=())
    return len(scan.attributes), len(scan.boxes)


def synth_step(root: Path, patients: int, scene_graphs: str) -> tuple[int]:
    config = SynthConfig(patients=patients, seed=7, scene_graphs=scene_graphs)
    return (write_sources(root, config).scene_graphs,)


def _row(step: str, workers: int, graphs: int, measured: Measure) -> str:
    scale = REAL_GRAPHS / graphs
    # With the machine to itself, wall time is about the CPU time shared by the busy processes.
    cpu_minutes = scale * measured.cpu / min(workers, os.cpu_count() or 1) / 60
    return (f"| {step} | {workers} | {measured.wall:.1f} | {measured.cpu:.1f} | "
            f"{graphs / measured.wall:,.0f} | {scale * measured.wall / 60:.1f} | "
            f"{cpu_minutes:.1f} | {measured.main_mib:,.0f} | {measured.worker_mib:,.0f} | "
            f"{_full_gib(measured, scale):.1f} |\n")


def _full_gib(measured: Measure, scale: float) -> float:
    # What the step added to its process grows with the graphs; what it started with does not.
    return (measured.start_mib + scale * (measured.main_mib - measured.start_mib)) / 1024


def _synth_row(mode: str, patients: int, measured: Measure) -> str:
    graphs = measured.counts[0]
    scale = REAL_GRAPHS / graphs
    return (f"| {mode} | {patients:,} | {graphs:,} | {measured.wall:.1f} | {measured.cpu:.1f} | "
            f"{1000 * measured.cpu / graphs:.2f} | {20_000 * measured.cpu / graphs:.1f} | "
            f"{scale * measured.cpu / 60:.1f} | {measured.main_mib:,.0f} |\n")


def _read_section(args: argparse.Namespace, temp: Path) -> str:
    counts = [int(count) for count in args.workers.split(",")]
    root = temp / "chest-imagenome"
    archive = root / "silver_dataset" / "scene_graph.zip"
    archive.parent.mkdir(parents=True)
    started = time.perf_counter()
    json_bytes = write_zip(archive, args.graphs, args.seed)
    generated = time.perf_counter() - started
    source = SceneGraphSource(archive, "zip")
    steps = [("read_scene_graphs", workers, partial(read_step, source, workers, {}))
             for workers in counts]
    most = max(counts)
    steps += [("read_scene_graphs, build columns", most,
               partial(read_step, source, most, BUILD_COLUMNS)),
              ("read_scene_graphs, build columns, categorical", most,
               partial(read_step, source, most, {**BUILD_COLUMNS,
                                                 "categorical": BUILD_CATEGORICAL})),
              ("write_scene_tabular (returning row counts only)", most,
               partial(write_step, root, most))]
    rows = ""
    for step, workers, run in steps:
        measured = measure(run)
        rows += _row(step, workers, args.graphs, measured)
        print(rows.splitlines()[-1], file=sys.stderr)
    label_rows, box_rows = measured.counts
    tables = root / "silver_dataset" / "scene_tabular"
    sizes = ", ".join(f"{path.name} {path.stat().st_size / 2**20:.0f} MiB"
                      for path in sorted(tables.iterdir()))
    return (
        f"- input: {args.graphs:,} generated graphs ({generated:.0f} s), "
        f"{json_bytes / args.graphs / 1024:.1f} KiB JSON each, "
        f"zip {archive.stat().st_size / 2**20:.0f} MiB\n"
        f"- output: {label_rows:,} label rows, {box_rows:,} box rows; {sizes}\n"
        f"- build columns: {', '.join(BUILD_COLUMNS['attribute_columns'])} (labels); "
        f"{', '.join(BUILD_COLUMNS['box_columns'])} (boxes); categorical: "
        f"{', '.join(BUILD_CATEGORICAL)}\n\n"
        "| step | workers | wall s | CPU s | graphs/s (wall) | 242 K: min (wall) "
        "| 242 K: min (CPU / workers) | peak MiB main | peak MiB worker | 242 K: GiB main |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n" + rows)


def _synth_section(patients: int, temp: Path) -> str:
    rows = ""
    for mode in ("none", "zip"):
        measured = measure(partial(synth_step, temp / f"synth-{mode}", patients, mode))
        rows += _synth_row(mode, patients, measured)
        print(rows.splitlines()[-1], file=sys.stderr)
    return (
        "\nWriting a whole synthetic tree (`write_sources`, one process), without scene graphs "
        "and with the zip; the difference is the cost of the graphs:\n\n"
        "| scene_graphs | patients | graphs | wall s | CPU s | CPU ms/graph "
        "| CPU s per 20 K graphs | 242 K: min (CPU) | peak MiB |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n" + rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", type=int, default=20_000)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--synth-patients", type=int, default=5750,
                        help="patients of the synthetic tree to write (~3.4 graphs each); 0 skips")
    parser.add_argument("--results", type=Path,
                        default=Path(__file__).with_name("RESULTS-scenegraph.md"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-scenegraph-") as temp:
        read = _read_section(args, Path(temp))
        synth = _synth_section(args.synth_patients, Path(temp)) if args.synth_patients else ""
    load = os.getloadavg()[0]
    section = (
        f"\n## Run of {time.strftime('%Y-%m-%d %H:%M')}\n\n"
        f"`python -m bench.bench_scenegraph --graphs {args.graphs} --workers {args.workers} "
        f"--synth-patients {args.synth_patients}` on "
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"pandas {pd.__version__} ({type(pd.Series([''], dtype='str').array).__name__} text "
        f"columns); "
        f"1-minute load average {load:.1f} at the end (other jobs share this machine, so wall "
        f"times are upper bounds; CPU times are less affected). Peak memory is VmHWM. Target: "
        f"{REAL_GRAPHS:,} graphs in < {TARGET_SECONDS // 60} min.\n\n" + read + synth)
    with args.results.open("a", encoding="utf-8") as results:
        results.write(section)
    print(section)


if __name__ == "__main__":
    main()
