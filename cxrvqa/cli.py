"""The ``cxrvqa`` command line: parse arguments, run one command, print a summary.

Every command returns an exit code instead of exiting, so tests call
``main([...])`` directly. Errors the user can fix (``CxrvqaError``) print one
line on stderr and exit non-zero without a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import textwrap
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cxrvqa import __version__
from cxrvqa.build.commit import check_output_dir, os_error_message
from cxrvqa.build.layout import (
    DATASET_SUBDIR,
    SCENE_TABULAR,
    SKIPPED_GRAPHS,
    SourceLayout,
)
from cxrvqa.errors import (
    EXIT_DATA,
    EXIT_DIFFERENCE,
    EXIT_OK,
    EXIT_USAGE,
    CxrvqaError,
    ProgramError,
    UsageError,
    printable,
)
from cxrvqa.vocab import SPLITS

__all__ = ["EXIT_CODES", "main"]

EXIT_CODES = """Exit codes:
  0    success
  1    check found errors in a program, verify found differences, fmt found a file it could
       not format (with --check: one not formatted), or match did not recognise the question
  2    usage error (a command line that cannot be run as given)
  3    data error: a missing, unreadable or inconsistent file, a download or export failure,
       an OS error such as a full disk (one line naming the path), a dependency not installed
  70   internal error: a cxrvqa bug, reported in one line (--debug prints the traceback)
  130  interrupted (Ctrl-C)
  141  standard output closed (e.g. piped into head): stops quietly
  143  terminated (SIGTERM): cleans up like Ctrl-C"""


def _splits(text: str) -> tuple[str, ...]:
    chosen = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [part for part in chosen if part not in SPLITS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"splits must be a comma list of {', '.join(SPLITS)}")
    return chosen


def _at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number no smaller than ``minimum`` (and no larger than
    ``maximum``); a usage error otherwise."""
    def whole(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            span = f"of at least {minimum}" if maximum is None else f"from {minimum} to {maximum}"
            raise argparse.ArgumentTypeError(f"expected a whole number {span}, got {text!r}")
        return value
    return whole


def _seconds(text: str) -> float:
    """An argparse type: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _path(text: str) -> Path:
    """An argparse type for every ``type=Path`` option: an empty string is no path.

    Path("") is ".", so `--output-dir "$UNSET"` would quietly write into the working folder.
    """
    if not text:
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return Path(text)


def _progress() -> bool:
    return sys.stderr.isatty()


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps description and epilog line breaks; adds "(default: X)" where the help does not say it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if ("default" in text or action.default in (None, False, argparse.SUPPRESS)
                or action.required or not action.option_strings):
            return text
        return text + " (default: %(default)s)"


def _examples(*lines: str) -> str:
    """An "Examples:" epilog, one command per line (``# ...`` explains the line before it)."""
    return "Examples:\n" + "\n".join(f"  {line}" for line in lines)


def _command(subparsers: Any, name: str, summary: str, description: str,
             examples: Sequence[str]) -> argparse.ArgumentParser:
    """A subcommand parser with a one-line summary, a paragraph and an Examples epilog."""
    parser: argparse.ArgumentParser
    parser = subparsers.add_parser(name, help=summary,
                                   description=textwrap.fill(description, 79),
                                   epilog=_examples(*examples), formatter_class=_HelpFormatter)
    parser.register("type", Path, _path)  # argparse looks types up here: type=Path runs _path
    return parser


# --- build ---------------------------------------------------------------------------------

def _add_source_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--physionet-root", type=Path, default=Path("."),
                        help="folder that contains physionet.org/files/ (default: .)")
    parser.add_argument("--mimic-cxr-jpg-dir", type=Path, help="MIMIC-CXR-JPG 2.0.0 folder "
                        "(default: ROOT/physionet.org/files/mimic-cxr-jpg/2.0.0)")
    parser.add_argument("--chest-imagenome-dir", type=Path, help="Chest ImaGenome 1.0.0 folder "
                        "(default: ROOT/physionet.org/files/chest-imagenome/1.0.0)")
    parser.add_argument("--mimic-iv-dir", type=Path, help="MIMIC-IV 2.2 folder "
                        "(default: ROOT/physionet.org/files/mimiciv/2.2)")


def _add_programs_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--programs", type=Path, action="append", default=[], metavar="DIR",
                        help="a folder of your own template programs (with an optional "
                             "_prelude.cxr), added to the bundled ones; repeatable (default: "
                             "none)")


def _program_set(args: argparse.Namespace) -> Any:
    """The bundled programs plus each --programs folder's (None without folders: the default)."""
    from cxrvqa.programs import program_set

    return program_set(args.programs) if args.programs else None


def _layout(args: argparse.Namespace) -> SourceLayout:
    return SourceLayout.from_root(args.physionet_root).with_dirs(
        mimic_cxr_jpg=args.mimic_cxr_jpg_dir, chest_imagenome=args.chest_imagenome_dir,
        mimic_iv=args.mimic_iv_dir)


def _add_build(subparsers: Any) -> None:
    parser = _command(
        subparsers, "build", "build train/valid/test.json from the sources",
        "Answer every released question (mimiccxrvqa/dataset/_*.json) from the PhysioNet sources "
        "and write train.json, valid.json, test.json and ans2idx.json with the published "
        "builder's exact bytes. All files are written or none. ROOT below is --physionet-root.",
        ["cxrvqa build                                  # in the folder holding physionet.org/",
         "cxrvqa build --physionet-root /data --splits test",
         "cxrvqa build --output-dir /tmp/built"])
    _add_source_options(parser)
    parser.add_argument("--dataset-dir", type=Path, default=DATASET_SUBDIR,
                        help="folder with the released question files (default: mimiccxrvqa/dataset)")
    parser.add_argument("--output-dir", type=Path, help="where to write (default: --dataset-dir)")
    parser.add_argument("--splits", type=_splits, default=SPLITS,
                        help="comma list of splits to build (default: train,valid,test)")
    _add_programs_option(parser)
    parser.set_defaults(run=_run_build)


def _run_build(args: argparse.Namespace) -> int:
    from cxrvqa.build.pipeline import build

    layout = _layout(args)
    missing = layout.missing()
    if missing:
        names = ", ".join(str(path) for path in missing[:3]) + (" …" if len(missing) > 3 else "")
        hints = [layout.mix_up(path) for path in missing]
        advice = [hint for hint in hints if hint]
        if None in hints:  # the files no known mix-up explains are still to be downloaded
            advice.append("get them with `cxrvqa download` (PhysioNet credentials needed) or "
                          "point --physionet-root at a download")
        print(f"cxrvqa: error: missing source file(s): {names}; {'; '.join(advice)}",
              file=sys.stderr)
        return EXIT_DATA
    started = time.perf_counter()
    report = build(layout, args.dataset_dir, args.output_dir, args.splits, progress=_progress(),
                   programs=_program_set(args))
    _print_summary(report, time.perf_counter() - started)
    return EXIT_OK


def _print_summary(report: Any, seconds: float) -> None:
    print(report.summary(seconds))


# --- demo ----------------------------------------------------------------------------------

def _add_demo(subparsers: Any) -> None:
    parser = _command(
        subparsers, "demo", "write a synthetic PhysioNet tree with question files, then build it",
        "Write a synthetic PhysioNet tree shaped exactly like the real sources (no credentials "
        "needed), add released-style question files for all 48 templates, build them and print "
        "a summary: questions per split by kind of answer (yes, no, empty list, other list) and "
        "the time of each stage.",
        ["cxrvqa demo                                   # ./cxrvqa-demo, 1000 patients",
         "cxrvqa demo --patients 8000 --scene-graphs zip --out big-demo",
         "cd cxrvqa-demo && cxrvqa build                # rebuild it as you will the real data"])
    parser.add_argument("--out", type=Path, default=Path("cxrvqa-demo"),
                        help="folder to write: new, empty or an earlier demo's "
                             "(default: ./cxrvqa-demo)")
    parser.add_argument("--patients", type=int, default=1000,
                        help="patients, including the 500 gold ones: 501 to 1000000 "
                             "(default: 1000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--scene-graphs", choices=("none", "dir", "zip"), default="none",
                        help="also write the silver scene graphs: none, an extracted "
                             "scene_graph/ folder, or scene_graph.zip (to try the zip path, "
                             "delete silver_dataset/scene_tabular/ and run cxrvqa build)")
    parser.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from cxrvqa.build.index import load_index
    from cxrvqa.build.pipeline import build
    from cxrvqa.build.stages import Stages
    from cxrvqa.synth import SynthConfig, write_questions, write_sources
    from cxrvqa.synth.tree import claim_demo_folder

    started = time.perf_counter()
    try:
        config = SynthConfig(patients=args.patients, seed=args.seed, scene_graphs=args.scene_graphs,
                             progress=_progress())
    except ValidationError as exc:  # the limits live in SynthConfig; name the option broken
        first = exc.errors()[0]
        field = str(first["loc"][0])
        raise UsageError(f"--{field.replace('_', '-')} {getattr(args, field)}: "
                         f"{first['msg'].lower()} ({SynthConfig.model_fields[field].description})"
                         ) from None
    claim_demo_folder(args.out)  # never over a real download
    layout = SourceLayout.from_root(args.out)
    stages = Stages(progress=_progress())
    # Writing a large tree takes a while: say so even without a terminal for the bars.
    print(f"cxrvqa demo: writing a synthetic PhysioNet tree of {args.patients} patients to "
          f"{args.out}…", file=sys.stderr, flush=True)
    with stages.stage("write synthetic tree"):
        write_sources(args.out, config)
    index = load_index(layout, stages=stages)
    with stages.stage("write question files"):
        written = write_questions(args.out, index, config)
    print(f"wrote a synthetic PhysioNet tree and {sum(written.values())} questions to {args.out}")
    report = build(layout, args.out / DATASET_SUBDIR, progress=_progress(), index=index,
                   stages=stages)
    _print_summary(report, time.perf_counter() - started)
    print(f"next: cd {args.out} && cxrvqa build")
    return EXIT_OK


# --- check ---------------------------------------------------------------------------------

def _add_check(subparsers: Any) -> None:
    parser = _command(
        subparsers, "check", "parse and type-check program files",
        "Parse and type-check template programs (.cxr files, or every .cxr file of a folder) and "
        "print compiler-style errors with line, column and a caret. Exits 1 when any file has "
        "an error.",
        ["cxrvqa check my_template.cxr",
         "cxrvqa check programs/                        # in a checkout: the 48 bundled programs",
         "cxrvqa check --programs my_programs/"])
    parser.add_argument("paths", nargs="*", type=Path, help="program files or folders")
    _add_programs_option(parser)
    parser.set_defaults(run=_run_check)


def _run_check(args: argparse.Namespace) -> int:
    from cxrvqa.lang.check import check_paths

    paths = [*args.paths, *args.programs]
    if not paths:
        print("cxrvqa check: error: give program files or folders (or --programs DIR)",
              file=sys.stderr)
        return 2
    return check_paths(paths, out=sys.stdout)


def _add_fmt(subparsers: Any) -> None:
    parser = _command(
        subparsers, "fmt", "rewrite program files in the canonical form",
        "Rewrite template programs (.cxr files, or every .cxr file of a folder) in the canonical "
        "layout the printer gives, keeping comments. With --check nothing is written: the diff "
        "is shown and the exit status is 1 when a file is not formatted.",
        ["cxrvqa fmt my_programs/",
         "cxrvqa fmt --check programs/                  # in a checkout: the 48 bundled programs"])
    parser.add_argument("paths", nargs="+", type=Path, help="program files or folders")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; show the diff and exit 1 if a file is not formatted")
    parser.set_defaults(run=_run_fmt)


def _run_fmt(args: argparse.Namespace) -> int:
    from cxrvqa.build.output import write_files_atomically
    from cxrvqa.lang.fmt import format_paths

    def replace(path: Path, text: str) -> None:
        # Staged and renamed: a full disk or a kill leaves the old program, never a truncated
        # one. A linked program file keeps its link; the file it points to is replaced, with
        # its permissions (a new file would get the umask's).
        target = path.resolve()
        mode = target.stat().st_mode & 0o7777
        write_files_atomically(target.parent, {target.name: text.encode("utf-8")})
        target.chmod(mode)

    return format_paths(args.paths, check=args.check, out=sys.stdout, write=replace)


# --- generate / stats ---------------------------------------------------------------------

def _add_generate(subparsers: Any) -> None:
    parser = _command(
        subparsers, "generate", "sample new balanced questions from the template programs",
        "Sample images and arguments for each template program (only possible object/attribute "
        "pairs), answer them and flatten each template's answer distribution. The same seed "
        "gives the same file for any number of workers. Records use the released question-file "
        "format; --complete adds subject_id, study_id and image_path (the built format).",
        ["cxrvqa generate --split valid --per-template 200 --seed 1 --out new_valid.json",
         "cxrvqa generate --split test --per-template 20 --templates program_1,program_22",
         "cxrvqa generate --split train --per-template 500 --complete --workers 2"])
    _add_source_options(parser)
    parser.add_argument("--split", choices=SPLITS, required=True,
                        help="which images to draw from: train/valid by the published split "
                             "rule, test from the 500 gold images")
    # Bounded: up to 16 draws per question are tried, so a huge count would never end.
    parser.add_argument("--per-template", type=_at_least(1, 1_000_000), required=True,
                        help="questions per template program (fewer when the images do not "
                             "allow that many distinct questions; at most 1000000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--templates", type=_names,
                        help="comma list, e.g. program_1,program_22 (default: all 48, or "
                             "with --programs the folders' programs only)")
    parser.add_argument("--out", type=Path, help="output file (default: generated_<split>.json)")
    parser.add_argument("--no-answers", action="store_true", help="leave the answers out")
    parser.add_argument("--no-paraphrases", action="store_true", help="use base wordings only")
    parser.add_argument("--complete", action="store_true",
                        help="write built records (with subject_id, study_id, image_path), "
                             "ready to train on")
    parser.add_argument("--workers", type=_at_least(1), default=1,
                        help="processes; the output is the same for any number")
    _add_programs_option(parser)
    parser.set_defaults(run=_run_generate)


def _names(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:  # "" or "," named no template; it must not mean all 48
        raise argparse.ArgumentTypeError(f"expected a comma list of program names such as "
                                         f"program_1,program_22, got {text!r}")
    return names


def _run_generate(args: argparse.Namespace) -> int:
    from cxrvqa.programs import load_programs
    from cxrvqa.tools.generate import GenerateOptions, chosen_programs, run_generate

    if args.complete and args.no_answers:
        raise UsageError("--complete writes records ready to train on, with answers; "
                         "drop --no-answers")
    out = args.out or Path(f"generated_{args.split}.json")
    programs = _program_set(args)
    templates = args.templates
    if templates is None and args.programs:  # an author's folder: generate for its programs
        templates = tuple(name for folder in args.programs for name in load_programs(folder))
        templates = tuple(dict.fromkeys(templates))
    chosen_programs(programs, templates)  # before the sources are read
    options = GenerateOptions(args.per_template, args.seed, templates=templates,
                              answers=not args.no_answers, paraphrases=not args.no_paraphrases,
                              workers=args.workers)
    generated = run_generate(_layout(args), args.split, options, out, programs,
                             complete=args.complete)
    print(generated.render_balance())
    print(f"generated {len(generated.records)} {args.split} questions into {out}")
    return EXIT_OK


def _add_stats(subparsers: Any) -> None:
    parser = _command(
        subparsers, "stats", "audit built or generated question files",
        "Count questions per split, template, content and semantic type; the answer "
        "distribution and empty-answer rate per template; patients and images shared between "
        "splits; duplicate questions per image; with --sources the agreement of gold and silver "
        "labels. PATHS mixes files and dataset folders (a folder means its built "
        "train/valid/test.json); other files (ans2idx.json, SHA256SUMS, released _*.json in a "
        "folder) are skipped with a note.",
        ["cxrvqa stats mimiccxrvqa/dataset",
         "cxrvqa stats mimiccxrvqa/dataset new_valid.json --json",
         "cxrvqa stats mimiccxrvqa/dataset --report card.html --sources",
         "cxrvqa stats mimiccxrvqa/dataset --plot charts/    # needs pip install 'cxrvqa[plot]'"])
    parser.add_argument("files", nargs="+", type=Path, metavar="PATH",
                        help="built or generated question files, or dataset folders")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--plot", type=Path, metavar="DIR",
                        help="write the charts here as PNG and SVG (needs matplotlib)")
    parser.add_argument("--report", type=Path, metavar="HTML",
                        help="write a self-contained HTML dataset card (works offline)")
    parser.add_argument("--sources", action="store_true",
                        help="also compare gold and silver labels on the test images")
    _add_source_options(parser)
    parser.set_defaults(run=_run_stats)


def _run_stats(args: argparse.Namespace) -> int:
    from cxrvqa.tools.card import write_card
    from cxrvqa.tools.stats import (
        compute_stats,
        question_paths,
        render_stats,
        require_matplotlib,
        stats_json,
        write_plots,
    )

    if args.plot is not None:
        require_matplotlib()  # fail before the work, not after
    files, notes = question_paths(args.files)
    report = args.report
    if report is not None and (report.suffix == ".json" and report.is_file()
                               or report.resolve() in {path.resolve() for path in files}):
        raise UsageError(f"--report {report}: would overwrite a data file with the HTML card; "
                         f"name a new .html file")
    # A read-only folder, or a folder where the card goes, fails here and not after the audit.
    if args.plot is not None:
        check_output_dir(args.plot)
    if report is not None:
        check_output_dir(report.parent, (report.name,))
    for note in notes:
        print(f"cxrvqa: note: {note}", file=sys.stderr)
    stats = compute_stats(files, _layout(args) if args.sources else None)
    print(stats_json(stats) if args.json else render_stats(stats))
    messages = []
    if args.plot is not None:
        messages.append(write_plots(stats, args.plot))
    if args.report is not None:
        messages.append(write_card(stats, args.report, notes=notes,
                                   generator=f"cxrvqa {__version__}"))
    # With --json, stdout stays one JSON document.
    for message in messages:
        print(message, file=sys.stderr if args.json else sys.stdout)
    return EXIT_OK


# --- evaluate / explain --------------------------------------------------------------------

def _add_evaluate(subparsers: Any) -> None:
    parser = _command(
        subparsers, "evaluate", "score VQA predictions against a built split",
        "Score predictions against a built split file: exact-set accuracy (overall, per content "
        "type, semantic type and template), micro F1, macro F1 over the whole answer vocabulary "
        "(answers absent from the split count as 0), macro F1 over the answers present in the "
        "split, and the support-weighted F1 the original baselines called macro F1; "
        "accuracies with 95% Wilson intervals. Missing, extra, malformed and unknown "
        "predictions are counted, not fatal. With --baseline, a second model's predictions are "
        "paired with the first record by record: the accuracy difference with its 95% interval "
        "and McNemar's exact p-value, overall and per content type.",
        ["cxrvqa evaluate --predictions preds.jsonl --gold mimiccxrvqa/dataset/test.json",
         "cxrvqa evaluate --predictions preds.json --gold valid.json --ans2idx ans2idx.json --json",
         "cxrvqa evaluate --predictions new.jsonl --baseline old.jsonl --gold test.json"])
    parser.add_argument("--predictions", type=Path, required=True,
                        help='a JSON list [{"split": "test", "idx": 0, "answer": ["yes"]}, ...], '
                             'a JSON object {"test:0": ["yes"], ...}, or JSON Lines with one '
                             'such record per line; answers are lists of strings')
    parser.add_argument("--gold", type=Path, required=True, help="a built train/valid/test.json")
    parser.add_argument("--ans2idx", type=Path,
                        help="answer vocabulary (default: ans2idx.json beside --gold, else the "
                             "110 answers and any other answer of the gold file)")
    parser.add_argument("--baseline", type=Path,
                        help="another model's predictions (same shapes) to compare with, "
                             "record by record")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(run=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from cxrvqa.tools.evaluate import compare, evaluate

    report = (evaluate(args.predictions, args.gold, args.ans2idx) if args.baseline is None
              else compare(args.predictions, args.baseline, args.gold, args.ans2idx))
    print(json.dumps(report.to_json(), indent=2) if args.json else report.render())
    return EXIT_OK


def _add_explain(subparsers: Any) -> None:
    parser = _command(
        subparsers, "explain", "show how an answer is computed and which label rows support it",
        "Answer one question and show the program, the value of every step and, for each "
        "answer element, the label rows behind it (report sentence row_id, relation, parent "
        "propagation, silver or gold). Name a built record, or an image, a program and its "
        "arguments.",
        ["cxrvqa explain --record test:12",
         'cxrvqa explain --image-id ID --program program_2 --args object="left lung" '
         'attribute=pneumonia',
         "cxrvqa explain --record valid:3 --json"])
    _add_source_options(parser)
    parser.add_argument("--record", metavar="SPLIT:IDX", help="a record of a built split file")
    parser.add_argument("--dataset-dir", type=Path, default=DATASET_SUBDIR,
                        help="folder with the built split files that --record reads")
    parser.add_argument("--image-id", help="an image of the cohorts")
    parser.add_argument("--program", help="template program, e.g. program_2")
    parser.add_argument("--args", nargs="*", default=[], metavar="NAME=VALUE",
                        help='bindings, e.g. object="left lung" attribute=pneumonia '
                             '(default: none)')
    parser.add_argument("--labels", choices=("silver", "gold"),
                        help="which labels to read (default: gold for gold images and test "
                             "records, else silver)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    _add_programs_option(parser)
    parser.set_defaults(run=_run_explain)


def _run_explain(args: argparse.Namespace) -> int:
    from cxrvqa.tools.explain import explain_from_sources, parse_bindings

    result = explain_from_sources(_layout(args), image_id=args.image_id, program=args.program,
                                  bindings=parse_bindings(args.args), record=args.record,
                                  dataset_dir=args.dataset_dir, labels=args.labels,
                                  programs=_program_set(args))
    print(json.dumps(result.to_json(), indent=2) if args.json else result.render())
    return EXIT_OK


# --- scene-tabular ------------------------------------------------------------------------

def _add_scene_tabular(subparsers: Any) -> None:
    parser = _command(
        subparsers, "scene-tabular", "write the silver scene_tabular TSVs from the scene graphs",
        "Read the Chest ImaGenome silver scene graphs (scene_graph.zip without extracting it, or "
        "an extracted scene_graph/ folder) and write attribute_relations_tabular.txt and "
        "bbox_objects_tabular.txt for other tools. cxrvqa build does not need them.",
        ["cxrvqa scene-tabular",
         "cxrvqa scene-tabular --chest-imagenome-dir /data/chest-imagenome/1.0.0 --skip-bad"])
    parser.add_argument("--chest-imagenome-dir", type=Path,
                        default=SourceLayout.from_root(".").chest_imagenome,
                        help="Chest ImaGenome 1.0.0 folder (default: ./physionet.org/files/"
                             "chest-imagenome/1.0.0)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip unreadable scene graphs instead of stopping; they are listed "
                             "in scene_tabular/skipped_scene_graphs.txt")
    parser.set_defaults(run=_run_scene_tabular)


def _run_scene_tabular(args: argparse.Namespace) -> int:
    from cxrvqa.build.scenegraph import write_scene_tabular

    scan = write_scene_tabular(args.chest_imagenome_dir, attribute_columns=(), box_columns=(),
                               skip_bad=args.skip_bad, progress=_progress())
    print(f"read {scan.files} scene graphs ({len(scan.skipped)} skipped): "
          f"{len(scan.attributes)} label rows, {len(scan.boxes)} box rows written to "
          f"{args.chest_imagenome_dir / SCENE_TABULAR}")
    for member, reason in scan.skipped[:10]:
        print(f"  skipped {member}: {reason}")
    if scan.skipped:
        print(f"the tables lack the skipped graphs; all {len(scan.skipped)} are listed in "
              f"{args.chest_imagenome_dir / SKIPPED_GRAPHS}")
    return EXIT_OK


# --- download -----------------------------------------------------------------------------

def _add_download_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=Path("."),
                        help="download root; files land in ROOT/physionet.org/files/ (default: .)")
    parser.add_argument("--base-url", default="https://physionet.org/files",
                        help="where <project>/<version>/<path> is served (default: PhysioNet)")
    parser.add_argument("--username", help="PhysioNet username (default: $PHYSIONET_USERNAME, "
                        "~/.netrc, or a prompt); the password comes from $PHYSIONET_PASSWORD, "
                        "~/.netrc or a hidden prompt, never from the command line")
    # Bounded: one thread per transfer, so --workers 10**9 would start one per file.
    parser.add_argument("--workers", type=_at_least(1, 64), default=4,
                        help="parallel transfers, at most 64 (default: 4)")
    # The credential options above are not needed by download-images --dry-run.
    parser.add_argument("--file-timeout", type=_seconds, metavar="SECONDS",
                        help="give up on a file whose transfer takes longer than this, all its "
                             "retries together (default: no limit)")
    parser.add_argument("--timeout", type=_seconds, metavar="SECONDS",
                        help="give up once the whole run has taken this long (default: no limit; "
                             "each connect or read still times out after 60 s)")


def _add_download(subparsers: Any) -> None:
    parser = _command(
        subparsers, "download", "fetch the PhysioNet files a build reads",
        "Fetch exactly the MIMIC-CXR-JPG, Chest ImaGenome and MIMIC-IV files cxrvqa build reads "
        "(PhysioNet credentials and signed data use agreements needed), in parallel, resumable, "
        "verified against each project's SHA256SUMS.txt.",
        ["PHYSIONET_USERNAME=you cxrvqa download",
         "cxrvqa download --root /data --workers 8"])
    _add_download_options(parser)
    parser.set_defaults(run=_run_download)


def _run_download(args: argparse.Namespace) -> int:
    from cxrvqa.tools.download import RetryPolicy, download_sources, resolve_credentials

    report = download_sources(args.root, base_url=args.base_url,
                              credentials=resolve_credentials(args.username),
                              workers=args.workers, progress=_progress(),
                              retry=RetryPolicy(overall=args.timeout,
                                                per_file=args.file_timeout))
    print(report.summary())
    return EXIT_OK


def _add_download_images(subparsers: Any) -> None:
    parser = _command(
        subparsers, "download-images", "fetch the JPGs the built dataset files reference",
        "Fetch only the MIMIC-CXR-JPG images that the built split files reference (their "
        "image_path, relative to physionet.org/files/mimic-cxr-jpg/2.0.0/files/). --dry-run "
        "works offline without credentials: it prints the count, the paths and the total "
        "size of the images already present.",
        ["cxrvqa download-images --splits test --dry-run",
         "cxrvqa download-images --splits test --workers 8"])
    _add_download_options(parser)
    parser.add_argument("--splits", type=_splits, default=SPLITS,
                        help="comma list of splits (default: train,valid,test)")
    parser.add_argument("--dataset-dir", type=Path, default=DATASET_SUBDIR,
                        help="folder with the built files (default: mimiccxrvqa/dataset)")
    parser.add_argument("--dry-run", action="store_true",
                        help="list the images and the sizes known locally; offline, no "
                             "credentials, fetches nothing")
    parser.set_defaults(run=_run_download_images)


def _run_download_images(args: argparse.Namespace) -> int:
    from cxrvqa.tools.download import (
        RetryPolicy,
        download_images,
        image_paths_from_dataset,
        offline_image_plan,
        offline_plan_summary,
        resolve_credentials,
    )

    paths = image_paths_from_dataset(args.dataset_dir, args.splits)
    if args.dry_run:  # offline: no credentials, no network
        plan = offline_image_plan(args.root, paths)
        files = SourceLayout.from_root(args.root).mimic_cxr_jpg / "files"
        print(f"images the built {','.join(args.splits)} files reference, relative to {files}/:")
        print("\n".join(path.removeprefix("files/") for path in sorted(set(paths))))
        print(offline_plan_summary(plan))
        return EXIT_OK
    report = download_images(args.root, paths, base_url=args.base_url,
                             credentials=resolve_credentials(args.username),
                             workers=args.workers, dry_run=False, progress=_progress(),
                             retry=RetryPolicy(overall=args.timeout,
                                                per_file=args.file_timeout))
    print(report.summary())
    return EXIT_OK


# --- verify / export ----------------------------------------------------------------------

def _add_verify(subparsers: Any) -> None:
    parser = _command(
        subparsers, "verify", "compare built files with a SHA256SUMS list, or with another build",
        "Compare the SHA-256 of the built files with a SHA256SUMS-format list, or compare two "
        "builds record by record (which records differ, per split and template). With no "
        "options: the manifest the last build wrote beside its files and "
        "DATASET_DIR/SHA256SUMS.txt when there is one. Exits 1 when anything differs.",
        ["cxrvqa verify", "cxrvqa verify --checksums path/to/SHA256SUMS.txt",
         "cxrvqa verify --against path/to/other/dataset", "cxrvqa verify --write-checksums"])
    parser.add_argument("--dataset-dir", type=Path, default=DATASET_SUBDIR,
                        help="folder with the built files (default: mimiccxrvqa/dataset)")
    parser.add_argument("--checksums", type=Path,
                        help="SHA256SUMS-format list (default: DATASET_DIR/SHA256SUMS.txt when it "
                             "exists)")
    parser.add_argument("--against", type=Path, help="another dataset folder to compare with")
    parser.add_argument("--write-checksums", action="store_true",
                        help="write DATASET_DIR/SHA256SUMS.txt for the built files and stop")
    parser.set_defaults(run=_run_verify)


def _run_verify(args: argparse.Namespace) -> int:
    from cxrvqa.tools.verify import (
        CHECKSUMS_FILE,
        CompareReport,
        VerifyReport,
        compare_datasets,
        verify_checksums,
        verify_manifest,
        write_checksums,
    )

    if args.write_checksums:
        print(f"wrote {write_checksums(args.dataset_dir)}")
        return EXIT_OK
    reports: list[VerifyReport | CompareReport] = []
    # No arguments: the manifest of the last build (a mixed set shows as mismatches), and the
    # SHA256SUMS list when there is one.
    manifest = verify_manifest(args.dataset_dir) if args.against is None else None
    if manifest is not None:
        reports.append(manifest)
    listed = args.checksums is not None or (args.dataset_dir / CHECKSUMS_FILE).exists()
    if args.checksums is not None or (args.against is None and (listed or manifest is None)):
        reports.append(verify_checksums(args.dataset_dir, args.checksums))
    if args.against is not None:
        reports.append(compare_datasets(args.dataset_dir, args.against))
    for report in reports:
        print(report.render())
    ok = all(report.ok for report in reports)
    print("verify: everything matches" if ok else "verify: differences found")
    return EXIT_OK if ok else EXIT_DIFFERENCE


def _add_export(subparsers: Any) -> None:
    parser = _command(
        subparsers, "export", "write the built splits as Parquet or a HF dataset",
        "Write the built splits as Parquet files or a Hugging Face dataset folder "
        "(datasets.load_from_disk), keeping every field, with template_arguments as a struct of "
        "string lists and answer_multihot over ans2idx.json. --format hf needs pip install "
        "'cxrvqa[export]' (datasets); Parquet needs only pyarrow, which cxrvqa installs.",
        ["cxrvqa export --format parquet --out parquet/",
         "cxrvqa export --format hf --out hf/ --dataset-dir mimiccxrvqa/dataset"])
    parser.add_argument("--format", choices=("parquet", "hf"), required=True,
                        help="parquet: <split>.parquet files; hf: a DatasetDict folder")
    parser.add_argument("--out", type=Path, required=True, help="new folder to write")
    parser.add_argument("--dataset-dir", type=Path, default=DATASET_SUBDIR,
                        help="folder with the built files (default: mimiccxrvqa/dataset)")
    parser.set_defaults(run=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from cxrvqa.tools.export import export_dataset

    report = export_dataset(args.dataset_dir, args.out, args.format)
    print(report.render())
    return EXIT_OK if report.ok else EXIT_DATA


# --- match / paraphrases -----------------------------------------------------------------

def _add_match(subparsers: Any) -> None:
    parser = _command(
        subparsers, "match", "show which program and arguments a question maps to",
        "Recognise a question the way func_vqa does and print the template program, its "
        "arguments and which layer matched: an exact template line (base or paraphrase), the "
        "slot-first parser for unseen wordings, or a refusal that names the closest template "
        "and any misspelt term. Exits 1 when the question is unknown or ambiguous.",
        ['cxrvqa match "is there pleural effusion in the left lung?"',
         'cxrvqa match "list all abnormality." --programs my_programs/'])
    parser.add_argument("question", help='question text, e.g. "is there pleural effusion?"')
    _add_programs_option(parser)
    parser.set_defaults(run=_run_match)


def _run_match(args: argparse.Namespace) -> int:
    from cxrvqa.programs import program_set
    from cxrvqa.tools.recognise import Recogniser

    found = Recogniser(program_set(args.programs)).recognise(args.question)
    if not found.ok:
        print(f"cxrvqa: error: {found.error()}", file=sys.stderr)
        return EXIT_DIFFERENCE
    print(found.render())
    return EXIT_OK


def _add_paraphrases(subparsers: Any) -> None:
    parser = _command(
        subparsers, "paraphrases", "mine question files' template wordings into a copy of the programs",
        "Read released-style question files (each record's template and template_program) and "
        "write a copy of the program set in which every program gains the paraphrases found "
        "for it as extra template lines: deduplicated, most frequent first, and only when their "
        "slots are exactly the program's params (mismatches are reported by file and record). "
        "Every command that takes --programs then uses the new wordings.",
        ["cxrvqa paraphrases mimiccxrvqa/dataset/_*.json --out mined_programs/",
         "cxrvqa match \"does the left lung show pneumonia?\" --programs mined_programs/"])
    parser.add_argument("files", nargs="+", type=Path, help="released-style question files")
    _add_programs_option(parser)
    parser.add_argument("--out", type=Path, required=True, help="folder to write the programs to")
    parser.set_defaults(run=_run_paraphrases)


def _run_paraphrases(args: argparse.Namespace) -> int:
    from cxrvqa.programs import program_set
    from cxrvqa.tools.paraphrases import check_out_folder, mine, write_program_set

    check_out_folder(args.out)  # before minutes of mining
    programs = program_set(args.programs)
    report = mine(args.files, programs)
    write_program_set(programs, report, args.out)
    print(report.render(list(programs)))
    print(f"wrote {len(programs)} programs with {sum(map(len, report.found.values()))} "
          f"paraphrase(s) to {args.out}")
    return EXIT_OK


# --- main ----------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cxrvqa", description="Build MIMIC-CXR-VQA from PhysioNet sources.",
        epilog=EXIT_CODES + "\n\nRun `cxrvqa COMMAND --help` for a command's options and examples.",
        formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=f"cxrvqa {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="print the traceback of an internal or OS error")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_build, _add_demo, _add_check, _add_fmt, _add_generate, _add_stats, _add_evaluate,
                _add_explain, _add_scene_tabular, _add_download, _add_download_images,
                _add_verify, _add_export, _add_match,
                _add_paraphrases):
        add(subparsers)
    return parser


EXIT_INTERNAL = 70  # sysexits' EX_SOFTWARE: a bug in cxrvqa, not in the input
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for `cxrvqa … | head`
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same cleanup runs."""


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pid = os.getpid()

    def terminate(signum: int, _frame: object) -> None:
        if os.getpid() != pid:  # a forked worker: die as the default action would
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _quiet_stdout() -> None:
    """After a closed pipe: point stdout at /dev/null so that exit-time flushes stay quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout without a descriptor (tests)
        pass


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or "(no message)"


def _printable_stdout() -> None:
    """Let stdout show any text: a terminal or locale that is not UTF-8 (LANG=en_US.ISO-8859-1,
    PYTHONIOENCODING=ascii) gets escapes for what it cannot encode, as stderr always does,
    instead of a UnicodeEncodeError on the first '…' or non-ASCII answer."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None and getattr(sys.stdout, "errors", None) == "strict":
        try:
            reconfigure(errors="backslashreplace")
        except (ValueError, OSError):  # a stream that cannot change now: leave it
            pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see ``EXIT_CODES``)."""
    _printable_stdout()
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) and usage errors (2): a code, not an exit
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        with _sigterm_as_interrupt():
            return int(args.run(args))
    except CxrvqaError as exc:
        # Diagnostics are lines by design; other messages stay one line even when a path
        # they name holds a line break.
        message = str(exc) if isinstance(exc, ProgramError) else printable(str(exc))
        print(f"cxrvqa: error: {message}", file=sys.stderr)
        return exc.exit_code
    except _Terminated:
        print("cxrvqa: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("cxrvqa: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"cxrvqa: error: {printable(os_error_message(exc))}", file=sys.stderr)
        return EXIT_DATA
    except Exception as exc:  # the last resort: a bug, reported in one line
        if args.debug:
            traceback.print_exc()
        missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
        if missing and missing.partition(".")[0] != "cxrvqa":  # the environment, not a bug
            print(f"cxrvqa: error: the package {missing!r} is not installed for {sys.executable}; "
                  f"install cxrvqa with its dependencies (pip install -e . in a checkout)",
                  file=sys.stderr)
            return EXIT_DATA
        print(f"cxrvqa: internal error: {type(exc).__name__}: {_one_line(exc)[:300]} (please "
              f"report this cxrvqa bug; rerun with --debug for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL
