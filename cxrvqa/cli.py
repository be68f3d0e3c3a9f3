"""The ``cxrvqa`` command line: parse arguments, run one command, print a summary.

Every command returns an exit code instead of exiting, so tests call
``main([...])`` directly. Errors the user can fix (``CxrvqaError``) print one
line on stderr and exit non-zero without a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cxrvqa.build.commit import os_error_message
from cxrvqa.build.layout import DATASET_SUBDIR, SourceLayout
from cxrvqa.errors import EXIT_DATA, EXIT_DIFFERENCE, EXIT_OK, CxrvqaError
from cxrvqa.vocab import SPLITS

__all__ = ["main"]

def _splits(text: str) -> tuple[str, ...]:
    chosen = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [part for part in chosen if part not in SPLITS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"splits must be a comma list of {', '.join(SPLITS)}")
    return chosen


def _progress() -> bool:
    return sys.stderr.isatty()


# --- build ---------------------------------------------------------------------------------

def _add_source_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--physionet-root", type=Path, default=Path("."),
                        help="folder that contains physionet.org/files/ (default: .)")
    parser.add_argument("--mimic-cxr-jpg-dir", type=Path, help="MIMIC-CXR-JPG 2.0.0 folder")
    parser.add_argument("--chest-imagenome-dir", type=Path, help="Chest ImaGenome 1.0.0 folder")
    parser.add_argument("--mimic-iv-dir", type=Path, help="MIMIC-IV 2.2 folder")


def _layout(args: argparse.Namespace) -> SourceLayout:
    return SourceLayout.from_root(args.physionet_root).with_dirs(
        mimic_cxr_jpg=args.mimic_cxr_jpg_dir, chest_imagenome=args.chest_imagenome_dir,
        mimic_iv=args.mimic_iv_dir)


def _add_build(subparsers: Any) -> None:
    parser = subparsers.add_parser("build", help="build train/valid/test.json from the sources")
    _add_source_options(parser)
    parser.add_argument("--dataset-dir", type=Path, default=DATASET_SUBDIR,
                        help="folder with the released question files (default: mimiccxrvqa/dataset)")
    parser.add_argument("--output-dir", type=Path, help="where to write (default: --dataset-dir)")
    parser.add_argument("--splits", type=_splits, default=SPLITS,
                        help="comma list of splits to build (default: train,valid,test)")
    parser.set_defaults(run=_run_build)


def _run_build(args: argparse.Namespace) -> int:
    from cxrvqa.build.pipeline import build

    layout = _layout(args)
    missing = layout.missing()
    if missing:
        names = ", ".join(str(path) for path in missing[:3]) + (" …" if len(missing) > 3 else "")
        print(f"cxrvqa: error: missing source file(s): {names}; get them with `cxrvqa download` "
              f"(PhysioNet credentials needed) or point --physionet-root at a download",
              file=sys.stderr)
        return EXIT_DATA
    started = time.perf_counter()
    report = build(layout, args.dataset_dir, args.output_dir, args.splits, progress=_progress())
    _print_summary(report, time.perf_counter() - started)
    return EXIT_OK


def _print_summary(report: Any, seconds: float) -> None:
    print(f"{'split':<8}{'questions':>10}{'yes':>8}{'no':>8}{'empty':>8}{'list':>8}")
    for split, records in report.records.items():
        kinds = Counter(_answer_kind(record["answer"]) for record in records)
        print(f"{split:<8}{len(records):>10}{kinds['yes']:>8}{kinds['no']:>8}"
              f"{kinds['empty']:>8}{kinds['list']:>8}")
    content = Counter(record["content_type"] for records in report.records.values()
                      for record in records)
    print("content types: " + ", ".join(f"{name} {count}" for name, count in sorted(content.items())))
    print("stages: " + ", ".join(f"{stage.name} {stage.wall:.2f}s" for stage in report.stages.times))
    total = sum(report.counts().values())
    print(f"built {total} questions into {report.output_dir} in {seconds:.1f}s")


def _answer_kind(answer: list[str]) -> str:
    if answer == ["yes"] or answer == ["no"]:
        return answer[0]
    return "list" if answer else "empty"


# --- demo ----------------------------------------------------------------------------------

def _add_demo(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="write a synthetic PhysioNet tree with question files, then build it")
    parser.add_argument("--out", type=Path, default=Path("cxrvqa-demo"),
                        help="folder to write (default: ./cxrvqa-demo)")
    parser.add_argument("--patients", type=int, default=1000,
                        help="patients, including the 500 gold ones (default: 1000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from cxrvqa.build.index import load_index
    from cxrvqa.build.pipeline import build
    from cxrvqa.synth import SynthConfig, write_questions, write_sources

    started = time.perf_counter()
    config = SynthConfig(patients=args.patients, seed=args.seed)
    layout = SourceLayout.from_root(args.out)
    write_sources(args.out, config)
    index = load_index(layout)
    written = write_questions(args.out, index, config)
    print(f"wrote a synthetic PhysioNet tree and {sum(written.values())} questions to {args.out}")
    report = build(layout, args.out / DATASET_SUBDIR, progress=_progress(), index=index)
    _print_summary(report, time.perf_counter() - started)
    print(f"next: cd {args.out} && cxrvqa build")
    return EXIT_OK


# --- check ---------------------------------------------------------------------------------

def _add_check(subparsers: Any) -> None:
    parser = subparsers.add_parser("check", help="parse and type-check program files")
    parser.add_argument("paths", nargs="+", type=Path, help="program files or folders")
    parser.set_defaults(run=_run_check)


def _run_check(args: argparse.Namespace) -> int:
    from cxrvqa.lang.check import check_paths

    return check_paths(args.paths, out=sys.stdout)


# --- generate / stats ---------------------------------------------------------------------

def _add_generate(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "generate", help="sample new balanced questions from the template programs")
    _add_source_options(parser)
    parser.add_argument("--split", choices=SPLITS, required=True)
    parser.add_argument("--per-template", type=int, required=True,
                        help="questions per template program")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--templates", type=_names, help="comma list, e.g. program_1,program_22")
    parser.add_argument("--out", type=Path, help="output file (default: generated_<split>.json)")
    parser.add_argument("--no-answers", action="store_true", help="leave the answers out")
    parser.add_argument("--no-paraphrases", action="store_true", help="use base wordings only")
    parser.add_argument("--workers", type=int, default=1, help="processes (same output for any)")
    parser.set_defaults(run=_run_generate)


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _run_generate(args: argparse.Namespace) -> int:
    from cxrvqa.tools.generate import GenerateOptions, run_generate

    out = args.out or Path(f"generated_{args.split}.json")
    options = GenerateOptions(args.per_template, args.seed, templates=args.templates,
                              answers=not args.no_answers, paraphrases=not args.no_paraphrases,
                              workers=args.workers)
    generated = run_generate(_layout(args), args.split, options, out)
    print(generated.render_balance())
    print(f"generated {len(generated.records)} {args.split} questions into {out}")
    return EXIT_OK


def _add_stats(subparsers: Any) -> None:
    parser = subparsers.add_parser("stats", help="audit built or generated question files")
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--plot", type=Path, metavar="DIR", help="write PNG bar charts here")
    parser.add_argument("--sources", action="store_true",
                        help="also compare gold and silver labels on the test images")
    _add_source_options(parser)
    parser.set_defaults(run=_run_stats)


def _run_stats(args: argparse.Namespace) -> int:
    from cxrvqa.tools.stats import (
        PLOT_EXTRA_MESSAGE,
        compute_stats,
        render_stats,
        stats_json,
        write_plots,
    )

    stats = compute_stats(args.files, _layout(args) if args.sources else None)
    print(stats_json(stats) if args.json else render_stats(stats))
    if args.plot is not None:
        message = write_plots(stats, args.plot)
        if message == PLOT_EXTRA_MESSAGE:
            print(message, file=sys.stderr)
            return EXIT_DATA
        print(message)
    return EXIT_OK


# --- evaluate / explain --------------------------------------------------------------------

def _add_evaluate(subparsers: Any) -> None:
    parser = subparsers.add_parser("evaluate", help="score VQA predictions against a built split")
    parser.add_argument("--predictions", type=Path, required=True)
    parser.add_argument("--gold", type=Path, required=True, help="a built train/valid/test.json")
    parser.add_argument("--ans2idx", type=Path, help="answer vocabulary (default: beside --gold)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(run=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from cxrvqa.tools.evaluate import evaluate

    report = evaluate(args.predictions, args.gold, args.ans2idx)
    print(json.dumps(report.to_json(), indent=2) if args.json else report.render())
    return EXIT_OK


def _add_explain(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "explain", help="show how an answer is computed and which label rows support it")
    _add_source_options(parser)
    parser.add_argument("--record", metavar="SPLIT:IDX", help="a record of a built split file")
    parser.add_argument("--dataset-dir", type=Path, default=DATASET_SUBDIR)
    parser.add_argument("--image-id", help="an image of the cohorts")
    parser.add_argument("--program", help="template program, e.g. program_2")
    parser.add_argument("--args", nargs="*", default=[], metavar="NAME=VALUE",
                        help='bindings, e.g. object="left lung" attribute=pneumonia')
    parser.add_argument("--labels", choices=("silver", "gold"), help="which labels to read")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(run=_run_explain)


def _run_explain(args: argparse.Namespace) -> int:
    from cxrvqa.tools.explain import explain_from_sources, parse_bindings

    result = explain_from_sources(_layout(args), image_id=args.image_id, program=args.program,
                                  bindings=parse_bindings(args.args), record=args.record,
                                  dataset_dir=args.dataset_dir, labels=args.labels)
    print(json.dumps(result.to_json(), indent=2) if args.json else result.render())
    return EXIT_OK


# --- scene-tabular ------------------------------------------------------------------------

def _add_scene_tabular(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "scene-tabular", help="write the silver scene_tabular TSVs from the scene graphs")
    parser.add_argument("--chest-imagenome-dir", type=Path,
                        default=SourceLayout.from_root(".").chest_imagenome,
                        help="Chest ImaGenome 1.0.0 folder (default: ./physionet.org/files/"
                             "chest-imagenome/1.0.0)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip unreadable scene graphs, counting them, instead of stopping")
    parser.set_defaults(run=_run_scene_tabular)


def _run_scene_tabular(args: argparse.Namespace) -> int:
    from cxrvqa.build.scenegraph import write_scene_tabular

    scan = write_scene_tabular(args.chest_imagenome_dir, attribute_columns=(), box_columns=(),
                               skip_bad=args.skip_bad, progress=_progress())
    print(f"read {scan.files} scene graphs ({len(scan.skipped)} skipped): "
          f"{len(scan.attributes)} label rows, {len(scan.boxes)} box rows written to "
          f"{args.chest_imagenome_dir / 'silver_dataset' / 'scene_tabular'}")
    for member, reason in scan.skipped[:10]:
        print(f"  skipped {member}: {reason}")
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
    parser.add_argument("--workers", type=int, default=4, help="parallel transfers (default: 4)")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="give up once the whole run has taken this long (default: no limit; "
                             "each connect or read still times out after 60 s)")


def _add_download(subparsers: Any) -> None:
    parser = subparsers.add_parser("download", help="fetch the PhysioNet files a build reads")
    _add_download_options(parser)
    parser.set_defaults(run=_run_download)


def _run_download(args: argparse.Namespace) -> int:
    from cxrvqa.tools.download import RetryPolicy, download_sources, resolve_credentials

    report = download_sources(args.root, base_url=args.base_url,
                              credentials=resolve_credentials(args.username),
                              workers=args.workers, progress=_progress(),
                              retry=RetryPolicy(overall=args.timeout))
    print(report.summary())
    return EXIT_OK


def _add_download_images(subparsers: Any) -> None:
    parser = subparsers.add_parser("download-images",
                                   help="fetch the JPGs the built dataset files reference")
    _add_download_options(parser)
    parser.add_argument("--splits", type=_splits, default=SPLITS,
                        help="comma list of splits (default: train,valid,test)")
    parser.add_argument("--dataset-dir", type=Path, default=DATASET_SUBDIR,
                        help="folder with the built files (default: mimiccxrvqa/dataset)")
    parser.add_argument("--dry-run", action="store_true", help="list the files, fetch nothing")
    parser.set_defaults(run=_run_download_images)


def _run_download_images(args: argparse.Namespace) -> int:
    from cxrvqa.tools.download import (
        RetryPolicy,
        download_images,
        image_paths_from_dataset,
        resolve_credentials,
    )

    paths = image_paths_from_dataset(args.dataset_dir, args.splits)
    report = download_images(args.root, paths, base_url=args.base_url,
                             credentials=resolve_credentials(args.username),
                             workers=args.workers, dry_run=args.dry_run, progress=_progress(),
                             retry=RetryPolicy(overall=args.timeout))
    if args.dry_run:
        print("\n".join(report.paths("planned")))
    print(report.summary())
    return EXIT_OK


# --- verify / export ----------------------------------------------------------------------

def _add_verify(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "verify", help="compare built files with a SHA256SUMS list, or with another build")
    parser.add_argument("--dataset-dir", type=Path, default=DATASET_SUBDIR,
                        help="folder with the built files (default: mimiccxrvqa/dataset)")
    parser.add_argument("--checksums", type=Path,
                        help="SHA256SUMS-format list (default: DATASET_DIR/SHA256SUMS.txt)")
    parser.add_argument("--against", type=Path, help="another dataset folder to compare with")
    parser.add_argument("--write-checksums", action="store_true",
                        help="write DATASET_DIR/SHA256SUMS.txt for the built files and stop")
    parser.set_defaults(run=_run_verify)


def _run_verify(args: argparse.Namespace) -> int:
    from cxrvqa.tools.verify import (
        CHECKSUMS_FILE,
        compare_datasets,
        verify_checksums,
        verify_manifest,
        write_checksums,
    )

    if args.write_checksums:
        print(f"wrote {write_checksums(args.dataset_dir)}")
        return EXIT_OK
    reports = []
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
    parser = subparsers.add_parser("export", help="write the built splits as Parquet or a HF dataset")
    parser.add_argument("--format", choices=("parquet", "hf"), required=True)
    parser.add_argument("--out", type=Path, required=True, help="new folder to write")
    parser.add_argument("--dataset-dir", type=Path, default=DATASET_SUBDIR,
                        help="folder with the built files (default: mimiccxrvqa/dataset)")
    parser.set_defaults(run=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from cxrvqa.tools.export import export_dataset

    report = export_dataset(args.dataset_dir, args.out, args.format)
    print(report.render())
    return EXIT_OK if report.ok else EXIT_DATA


# --- main ----------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cxrvqa", description="Build MIMIC-CXR-VQA from PhysioNet sources.")
    parser.add_argument("--debug", action="store_true",
                        help="print the traceback of an internal or OS error")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_build, _add_demo, _add_check, _add_generate, _add_stats, _add_evaluate,
                _add_explain, _add_scene_tabular, _add_download, _add_download_images,
                _add_verify, _add_export):
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Exit codes: 0 ok, 1 differences or program errors, 2 usage, 3 data/OS errors (one line
    naming the path), 70 an internal error (a bug: one line; ``--debug`` prints the traceback),
    130 Ctrl-C, 141 stdout closed (quietly), 143 SIGTERM.
    """
    args = _parser().parse_args(argv)
    try:
        with _sigterm_as_interrupt():
            return int(args.run(args))
    except CxrvqaError as exc:
        print(f"cxrvqa: error: {exc}", file=sys.stderr)
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
        print(f"cxrvqa: error: {os_error_message(exc)}", file=sys.stderr)
        return EXIT_DATA
    except Exception as exc:  # the last resort: a bug, reported in one line
        if args.debug:
            traceback.print_exc()
        print(f"cxrvqa: internal error: {type(exc).__name__}: {_one_line(exc)[:300]} (please "
              f"report this cxrvqa bug; rerun with --debug for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL
