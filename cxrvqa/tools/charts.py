"""Draw the audit's charts: horizontal bar charts as inline SVG (no dependencies) or with matplotlib.

A ``Chart`` is data only: rows (one label each, read top to bottom), series (one colour
each, drawn side by side or stacked) and a value per row and series. ``svg`` renders it as
a self-contained ``<svg>`` element for the HTML dataset card; ``draw_with_matplotlib``
draws the same chart as PNG and SVG file contents for ``stats --plot``. Bars are horizontal so that
48 template names stay readable.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Literal

__all__ = ["ANSWER_COLOURS", "SPLIT_COLOURS", "Chart", "draw_with_matplotlib", "svg"]

SPLIT_COLOURS = {"train": "#4c78a8", "valid": "#f58518", "test": "#54a24b"}
ANSWER_COLOURS = ("#4c78a8", "#72b7b2", "#eeca3b", "#bab0ac")  # 1st, 2nd, 3rd answer, the rest
_OTHER_COLOURS = ("#e45756", "#b279a2", "#9d755d", "#ff9da6")
_FONT = 12
_CHAR = 6.8  # average width of a 12px sans-serif character
_WIDTH = 820
_BAR_AREA = 420


@dataclass(frozen=True)
class Chart:
    """A horizontal bar chart.

    ``values[r][s]`` is row ``r``'s value of series ``s``. ``share`` charts run from 0 to
    1 and label values as percentages. ``labels[r][s]`` names a stacked segment (drawn
    inside it when it fits, and in its tooltip); ``notes[r]`` is written after row ``r``.
    """

    name: str
    title: str
    rows: Sequence[str]
    series: Sequence[str]
    values: Sequence[Sequence[float]]
    mode: Literal["grouped", "stacked"] = "grouped"
    share: bool = False
    axis: str = "questions"
    labels: Sequence[Sequence[str]] | None = None
    notes: Sequence[str] | None = None
    colours: Sequence[str] = field(default=())

    def colour(self, number: int) -> str:
        if self.colours:
            return self.colours[number % len(self.colours)]
        name = self.series[number]
        return SPLIT_COLOURS.get(name, _OTHER_COLOURS[number % len(_OTHER_COLOURS)])

    @property
    def _axis(self) -> tuple[float, int]:
        totals = [sum(row) if self.mode == "stacked" else max(row, default=0) for row in self.values]
        largest = max(totals, default=0)
        if self.share and (largest <= 0 or largest > 0.8):  # shares end at 100 %
            return 1.0, 5
        return _nice(largest)

    @property
    def top(self) -> float:
        """The value at the right end of the axis."""
        return self._axis[0]

    @property
    def ticks(self) -> list[float]:
        """Axis ticks at round steps, e.g. 0, 50, ..., 250."""
        top, parts = self._axis
        return [top * tick / parts for tick in range(parts + 1)]

    def value_text(self, value: float) -> str:
        return f"{value:.1%}" if self.share else f"{value:,.0f}"

    def tick_text(self, value: float) -> str:
        return f"{value:.0%}" if self.share else f"{value:,.0f}"


_STEPS = ((1, 5), (1.5, 3), (2, 4), (2.5, 5), (3, 3), (4, 4), (5, 5), (6, 3), (8, 4), (10, 5))


def _nice(value: float) -> tuple[float, int]:
    """A round axis end at least ``value`` and its number of tick intervals (1, 5 for 0)."""
    if value <= 0:
        return 1.0, 5
    power = 10.0 ** math.floor(math.log10(value))
    return next((power * factor, parts) for factor, parts in _STEPS if power * factor >= value)


# --- SVG ---------------------------------------------------------------------------------

def _text(x: float, y: float, text: str, *, anchor: str = "start", size: int = _FONT,
          fill: str = "#222", weight: str = "normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}" fill="{fill}">{escape(text)}</text>')


def svg(chart: Chart) -> str:
    """The chart as one ``<svg>`` element with a ``<title>``, a legend and value tooltips."""
    label_width = min(260, int(max((len(r) for r in chart.rows), default=4) * _CHAR) + 12)
    bar_x = label_width + 8
    per_row = (14 * len(chart.series) + 8) if chart.mode == "grouped" else 22
    legend = len(chart.series) > 1
    top = 34 + (22 if legend else 0)
    height = top + per_row * len(chart.rows) + 34
    scale = _BAR_AREA / chart.top
    notes = max((len(note) for note in chart.notes or ()), default=0) * 6.2
    width = max(_WIDTH, int(bar_x + _BAR_AREA + _notes_offset(chart) + notes + 8))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" '
             f'font-family="Helvetica, Arial, sans-serif" data-chart="{escape(chart.name)}">',
             f"<title>{escape(chart.title)}</title>",
             _text(0, 18, chart.title, size=14, weight="bold")]
    if legend:
        parts += _legend(chart, 0, 40)
    parts += _axis(chart, bar_x, top, per_row * len(chart.rows), scale)
    for number, row in enumerate(chart.rows):
        y = top + number * per_row
        parts.append(_text(bar_x - 6, y + per_row / 2 + 4, row, anchor="end"))
        parts += (_grouped_row if chart.mode == "grouped" else _stacked_row)(
            chart, number, bar_x, y, scale)
    parts.append("</svg>")
    return "\n".join(parts)


def _notes_offset(chart: Chart) -> int:
    """Where notes start after the bar area: past the value labels of grouped bars."""
    return 60 if chart.mode == "grouped" else 8


def _legend(chart: Chart, x: float, y: float) -> list[str]:
    parts = []
    for number, name in enumerate(chart.series):
        parts.append(f'<rect x="{x:.1f}" y="{y - 10}" width="12" height="12" '
                     f'fill="{chart.colour(number)}"/>')
        parts.append(_text(x + 16, y, name))
        x += 16 + len(name) * _CHAR + 18
    return parts


def _axis(chart: Chart, x: float, y: float, height: float, scale: float) -> list[str]:
    parts = []
    for value in chart.ticks:
        tx = x + value * scale
        parts.append(f'<line x1="{tx:.1f}" y1="{y - 4}" x2="{tx:.1f}" y2="{y + height}" '
                     f'stroke="#ddd"/>')
        parts.append(_text(tx, y + height + 14, chart.tick_text(value), anchor="middle",
                           size=10, fill="#555"))
    parts.append(_text(x + _BAR_AREA / 2, y + height + 28, chart.axis, anchor="middle",
                       size=11, fill="#555"))
    return parts


def _bar(x: float, y: float, width: float, height: float, colour: str, tip: str) -> str:
    return (f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(width, 0):.1f}" height="{height}" '
            f'fill="{colour}"><title>{escape(tip)}</title></rect>')


def _grouped_row(chart: Chart, number: int, x: float, y: float, scale: float) -> list[str]:
    parts = []
    row = chart.rows[number]
    for series, value in enumerate(chart.values[number]):
        bar_y = y + 4 + series * 14
        width = value * scale
        name = chart.series[series]
        tip = f"{row}: {chart.value_text(value)}" + (f" ({name})" if len(chart.series) > 1 else "")
        parts.append(_bar(x, bar_y, width, 12, chart.colour(series), tip))
        parts.append(_text(x + width + 4, bar_y + 10, chart.value_text(value), size=10,
                           fill="#444"))
    if chart.notes:
        parts.append(_text(x + _BAR_AREA + _notes_offset(chart), y + 14, chart.notes[number],
                           size=11,
                           fill="#444"))
    return parts


def _stacked_row(chart: Chart, number: int, x: float, y: float, scale: float) -> list[str]:
    parts = []
    left = x
    row = chart.rows[number]
    for series, value in enumerate(chart.values[number]):
        if value <= 0:
            continue
        width = value * scale
        label = chart.labels[number][series] if chart.labels else chart.series[series]
        parts.append(_bar(left, y + 3, width, 16, chart.colour(series),
                          f"{row}: {label} {chart.value_text(value)}"))
        if chart.labels and label and len(label) * 6.2 + 6 < width:
            parts.append(_text(left + 3, y + 15, label, size=10, fill="#111"))
        left += width
    if chart.notes:
        parts.append(_text(x + _BAR_AREA + _notes_offset(chart), y + 15, chart.notes[number],
                           size=11,
                           fill="#444"))
    elif chart.mode == "stacked" and not chart.share:
        parts.append(_text(left + 4, y + 15, chart.value_text(sum(chart.values[number])),
                           size=10, fill="#444"))
    return parts


# --- matplotlib ----------------------------------------------------------------------------

def draw_with_matplotlib(chart: Chart, formats: Sequence[str] = ("png", "svg")
                         ) -> dict[str, bytes]:
    """The chart drawn with matplotlib (imported by the caller): {format: file content}.

    The same chart gives the same bytes: SVG carries no date, and its element ids come from a
    fixed salt instead of a random one.
    """
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(10, 1.2 + 0.28 * len(chart.rows) *
                                         (len(chart.series) if chart.mode == "grouped" else 1)))
    positions = list(range(len(chart.rows)))
    height = 0.8 / len(chart.series) if chart.mode == "grouped" else 0.7
    lefts = [0.0] * len(chart.rows)
    for series, name in enumerate(chart.series):
        values = [row[series] for row in chart.values]
        if chart.mode == "grouped":
            ys = [p - 0.4 + height * (series + 0.5) for p in positions]
            axes.barh(ys, values, height=height, color=chart.colour(series), label=name)
        else:
            axes.barh(positions, values, left=lefts, height=height, color=chart.colour(series),
                      label=name)
            _segment_labels(axes, chart, series, lefts, values)
            lefts = [a + b for a, b in zip(lefts, values)]
    axes.set_yticks(positions, list(chart.rows), fontsize=8)
    axes.set_ylim(len(chart.rows) - 0.5, -0.5)  # first row on top, as in the table
    axes.set_xlim(0, chart.top)
    axes.set_xticks(chart.ticks)
    axes.set_xlabel(chart.axis)
    axes.set_title(chart.title, pad=24 if len(chart.series) > 1 else 6)
    if chart.share:
        axes.xaxis.set_major_formatter(lambda value, _: f"{value:.0%}")
    if chart.notes:
        for position, note in zip(positions, chart.notes):
            axes.text(chart.top * 1.01, position, note, va="center", fontsize=7)
    if len(chart.series) > 1:
        axes.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=len(chart.series),
                    frameon=False)
    figure.tight_layout()
    drawn = {}
    with plt.rc_context({"svg.hashsalt": "cxrvqa"}):
        for suffix in formats:
            buffer = io.BytesIO()
            figure.savefig(buffer, format=suffix, dpi=100, metadata={"Date": None})
            drawn[suffix] = buffer.getvalue()
    plt.close(figure)
    return drawn


def _segment_labels(axes: object, chart: Chart, series: int, lefts: Sequence[float],
                    values: Sequence[float]) -> None:
    if not chart.labels:
        return
    for position, (left, value) in enumerate(zip(lefts, values)):
        label = chart.labels[position][series]
        if label and value > chart.top * 0.012 * (len(label) + 1):
            axes.text(left + chart.top * 0.005, position, label, va="center",  # type: ignore[attr-defined]
                      fontsize=7)
