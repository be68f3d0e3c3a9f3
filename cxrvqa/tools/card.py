"""Write the audit as a dataset card: one self-contained HTML file with inline SVG charts.

The card is what ``cxrvqa stats --report card.html`` writes for a researcher to share:
no scripts, no fonts, images or styles from the network, so it opens offline and
prints as it shows. Every chart of ``stats.charts`` is embedded, each followed by the
numbers it draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path

from cxrvqa.build.output import write_files_atomically
from cxrvqa.tools.charts import Chart, svg
from cxrvqa.tools.stats import Stats, charts, display_splits

__all__ = ["dataset_card", "write_card"]

_STYLE = """
body { font-family: Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 860px;
       color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 2px 8px; text-align: right; }
th:first-child, td:first-child, td.text { text-align: left; }
.flag { color: #b00; font-weight: bold; }
.note { color: #555; font-size: 0.9em; }
figure { margin: 1em 0; }
svg { max-width: 100%; height: auto; }
"""

_EXPLAIN = {
    "split_sizes": "Questions in each split.",
    "content_types": "Questions per content type, one bar per split.",
    "semantic_types": "Questions per semantic type, one bar per split.",
    "questions_per_template": "Questions per template program; each bar is split by split.",
    "answer_distribution": "For each template, the share of its questions with the most "
                           "frequent answer, the second and the third (named in the bar when "
                           "it fits, and in the tooltip), and all other answers together. "
                           "[] is the empty answer.",
    "empty_answer_rate": "Share of each template's questions whose answer is the empty list.",
    "gold_silver_agreement": "On the gold test images, the share of test questions whose "
                             "answer from the silver (automatic) labels equals the answer from "
                             "the gold (manual) labels.",
}


def write_card(stats: Stats, path: Path, *, notes: Sequence[str] = (),
               generator: str = "cxrvqa") -> str:
    """Write the card to ``path``; returns a one-line message for the user."""
    # Staged and renamed: a full disk or Ctrl-C leaves no half-written card.
    text = dataset_card(stats, notes=notes, generator=generator)
    write_files_atomically(path.parent, {path.name: text.encode("utf-8")})
    return f"wrote the dataset card {path} ({len(charts(stats))} charts)"


def dataset_card(stats: Stats, *, notes: Sequence[str] = (), generator: str = "cxrvqa") -> str:
    """The HTML text of the card."""
    made = {chart.name: chart for chart in charts(stats)}
    body = ["<h1>MIMIC-CXR-VQA dataset card</h1>",
            f'<p class="note">Made by {escape(generator)} from {len(stats.files)} file(s): '
            f"{escape(', '.join(stats.files))}.</p>",
            *(f'<p class="note">{escape(note)}</p>' for note in notes),
            "<h2>Splits</h2>", _summary(stats), _figure(made["split_sizes"])]
    body += ["<h2>Question types</h2>", _figure(made["content_types"]),
             _figure(made["semantic_types"])]
    body += ["<h2>Templates</h2>", _figure(made["questions_per_template"])]
    body += ["<h2>Answers</h2>"]
    if stats.answers:
        body += [_figure(made["answer_distribution"]), _figure(made["empty_answer_rate"])]
    else:
        body.append("<p>The files hold no answers (question files without answers).</p>")
    body += ["<h2>Split overlap</h2>", _overlaps(stats)]
    body += ["<h2>Gold vs silver labels</h2>"]
    if "gold_silver_agreement" in made:
        body.append(_figure(made["gold_silver_agreement"]))
    else:
        body.append("<p>Not computed: run <code>cxrvqa stats --sources</code> in the folder "
                    "with the PhysioNet sources to compare gold and silver labels.</p>")
    body += ["<h2>Every template</h2>", _template_table(stats)]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<title>MIMIC-CXR-VQA dataset card</title>\n"
            f"<style>{_STYLE}</style>\n</head>\n<body>\n" + "\n".join(body)
            + "\n</body>\n</html>\n")


def _figure(chart: Chart) -> str:
    return (f"<figure>\n{svg(chart)}\n<figcaption class=\"note\">"
            f"{escape(_EXPLAIN.get(chart.name, ''))}</figcaption>\n</figure>")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
    lines = ["<table>", f"<tr>{head}</tr>"]
    # Cells are escaped by the callers, which may mark a cell up (e.g. a flag).
    lines += ["<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows]
    return "\n".join(lines + ["</table>"])


def _summary(stats: Stats) -> str:
    rows = [[escape(split), f"{stats.by_split[split]:,}",
             f"{stats.by_split[split] / stats.questions:.1%}",
             f"{stats.duplicates.get(split, 0):,}"] for split in display_splits(stats)]
    rows.append(["all", f"{stats.questions:,}", "100.0%" if stats.questions else "-",
                 f"{sum(stats.duplicates.values()):,}"])
    rate = stats.empty_rate
    empty = ("no answers in the files" if rate is None
             else f"{stats.empty:,} of {stats.answered:,} answers are empty ({rate:.1%})")
    return (_table(["split", "questions", "share", "duplicate questions on one image"], rows)
            + f"\n<p>{escape(empty)}.</p>")


def _overlaps(stats: Stats) -> str:
    if not stats.overlaps:
        return "<p>Only one split: nothing can be shared.</p>"
    rows = []
    for overlap in stats.overlaps:
        patients = "unknown" if overlap.patients is None else f"{overlap.patients:,}"
        flag = '<span class="flag">overlap</span>' if overlap.flagged else "none"
        rows.append([escape(overlap.splits), f"{overlap.images:,}", patients, flag])
    return (_table(["splits", "shared images", "shared patients", "flag"], rows)
            + '\n<p class="note">The published train and valid splits share 698 patients '
              "(split by image, not by patient); test shares none.</p>")


def _template_table(stats: Stats) -> str:
    splits = display_splits(stats)
    rows = []
    for program, counts in stats.by_template.items():
        answers = stats.answers.get(program, {})
        total = sum(answers.values())
        top = next(iter(answers.items()), None)
        row = [escape(program), *(f"{counts.get(s, 0):,}" for s in splits), f"{len(answers)}",
               f"{answers.get('[]', 0) / total:.1%}" if total else "-",
               escape(f"{top[0]} ({top[1] / total:.1%})") if top else "-"]
        if stats.agreement is not None:
            tally = stats.agreement.get(program)
            rate = tally.rate if tally else None
            row.append("-" if rate is None or tally is None
                       else f"{rate:.1%} ({tally.agree}/{tally.questions})")
        rows.append(row)
    header = ["template", *splits, "answers", "empty", "top answer (share)"]
    if stats.agreement is not None:
        header.append("gold = silver")
    return _table(header, rows)
