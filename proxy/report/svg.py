"""Charts as inline SVG, drawn here at build time: no library, no script, no network.

Colours are the Okabe-Ito palette (distinguishable with every common colour-vision
deficiency); the two arms also differ in marker shape (personalised: circle, control: square)
and every chart has a ``<title>`` and a ``<desc>`` and sits beside a table of the same figures,
so nothing is told by colour alone. Every chart is an ``<svg class="chart" data-chart=KIND>``
(the tests find them by that).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PERSONALISED = "#0072B2"  # blue
CONTROL = "#D55E00"  # vermillion
NEUTRAL = "#555555"
GRID = "#DDDDDD"
FONT = 'font-family="system-ui, sans-serif" font-size="12"'


@dataclass(frozen=True, slots=True)
class Row:
    """One labelled value with its interval (None: undefined, drawn as "no data")."""

    label: str
    value: float | None
    low: float | None
    high: float | None
    faint: bool = False  # not enough data: drawn hollow and labelled so


def _open(kind: str, width: int, height: int, title: str, desc: str) -> list[str]:
    return [
        f'<svg class="chart" data-chart="{kind}"'
        f' viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">',
        f"<title>{escape(title)}</title><desc>{escape(desc)}</desc>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
    ]


def _range(values: Sequence[float | None], include_zero: bool) -> tuple[float, float]:
    found = [v for v in values if v is not None and math.isfinite(v)]
    if include_zero:
        found.append(0.0)
    if not found:
        return 0.0, 1.0
    low, high = min(found), max(found)
    if high == low:
        high = low + 1.0
    pad = (high - low) * 0.08
    # rates are never negative: no axis below zero unless a value is
    return (low - pad if low - pad >= 0 or low < 0 else 0.0), high + pad


def _fmt(value: float, percent: bool) -> str:
    return f"{100 * value:.1f}%" if percent else f"{value:.3g}"


def interval_chart(
    kind: str,
    title: str,
    rows: Sequence[tuple[str, Row, Row | None]],
    *,
    percent: bool = True,
    zero_line: bool = False,
    names: tuple[str, str] = ("personalised", "control"),
) -> str:
    """Horizontal dot-and-whisker chart: per group one or two rows (personalised, control),
    each a marker at the value and a line over its 95% interval."""
    label_w, plot_w, row_h, top = 190, 420, 18, 34
    lines = sum(1 + (second is not None) for _, _, second in rows)
    height = top + lines * row_h + len(rows) * 8 + 34
    width = label_w + plot_w + 175
    values: list[float | None] = []
    for _, a, b in rows:
        for r in (a, b):
            if r is not None:
                values += [r.low, r.high, r.value]
    lo, hi = _range(values, zero_line)

    def x(v: float) -> float:
        return label_w + (v - lo) / (hi - lo) * plot_w

    desc = "; ".join(
        f"{group}: " + ", ".join(_describe(r, percent) for r in (a, b) if r is not None)
        for group, a, b in rows
    )
    out = _open(kind, width, height, title, desc)
    out.append(f'<text x="8" y="18" {FONT} font-weight="bold">{escape(title)}</text>')
    for i in range(5):  # grid and axis labels
        v = lo + (hi - lo) * i / 4
        out.append(
            f'<line x1="{x(v):.1f}" y1="{top - 6}" x2="{x(v):.1f}" y2="{height - 28}"'
            f' stroke="{GRID}"/>'
            f'<text x="{x(v):.1f}" y="{height - 14}" {FONT} text-anchor="middle"'
            f' fill="{NEUTRAL}">{_fmt(v, percent)}</text>'
        )
    if zero_line and lo < 0 < hi:
        out.append(
            f'<line x1="{x(0):.1f}" y1="{top - 6}" x2="{x(0):.1f}" y2="{height - 28}"'
            f' stroke="#000" stroke-dasharray="4 3"/>'
        )
    y = top
    for group, a, b in rows:
        out.append(f'<text x="8" y="{y + 12}" {FONT}>{escape(_short(group))}</text>')
        for r, colour, square in ((a, PERSONALISED, False), (b, CONTROL, True)):
            if r is None:
                continue
            out.append(_marker(r, y + 8, x, colour, square, percent, label_w + plot_w + 6))
            y += row_h
        y += 8
    if not zero_line or any(b is not None for _, _, b in rows):
        out.append(_legend(width - 250, 14, names))
    out.append("</svg>")
    return "\n".join(out)


def _marker(
    r: Row, y: float, x: object, colour: str, square: bool, percent: bool, text_x: float
) -> str:
    scale = x  # the value -> position function
    assert callable(scale)
    if r.value is None:
        return f'<text x="{text_x}" y="{y + 4}" {FONT} fill="{NEUTRAL}">no data</text>'
    parts = []
    if r.low is not None and r.high is not None:
        parts.append(
            f'<line x1="{scale(r.low):.1f}" y1="{y}" x2="{scale(r.high):.1f}" y2="{y}"'
            f' stroke="{colour}" stroke-width="2"/>'
        )
    cx = scale(r.value)
    fill = "#ffffff" if r.faint else colour
    if square:
        parts.append(
            f'<rect x="{cx - 4:.1f}" y="{y - 4}" width="8" height="8" fill="{fill}"'
            f' stroke="{colour}" stroke-width="2"/>'
        )
    else:
        parts.append(
            f'<circle cx="{cx:.1f}" cy="{y}" r="4.5" fill="{fill}" stroke="{colour}"'
            f' stroke-width="2"/>'
        )
    note = " (not enough data)" if r.faint else ""
    parts.append(
        f'<text x="{text_x}" y="{y + 4}" {FONT} fill="{NEUTRAL}">'
        f"{_fmt(r.value, percent)}{note}</text>"
    )
    return "".join(parts)


def _legend(x: float, y: float, names: tuple[str, str]) -> str:
    first = (
        f'<circle cx="{x}" cy="{y - 4}" r="4.5" fill="{PERSONALISED}"/>'
        f'<text x="{x + 9}" y="{y}" {FONT}>{escape(names[0])}</text>'
    )
    if not names[1]:
        return first
    return first + (
        f'<rect x="{x + 106}" y="{y - 8}" width="8" height="8" fill="{CONTROL}"/>'
        f'<text x="{x + 119}" y="{y}" {FONT}>{escape(names[1])}</text>'
    )


def _describe(r: Row, percent: bool) -> str:
    if r.value is None:
        return f"{r.label} no data"
    text = f"{r.label} {_fmt(r.value, percent)}"
    if r.low is not None and r.high is not None:
        text += f" ({_fmt(r.low, percent)} to {_fmt(r.high, percent)})"
    return text + (" not enough data" if r.faint else "")


def _short(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def line_chart(
    kind: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    percent: bool = True,
) -> str:
    """Lines over time (personalised, control): circles and squares at each point."""
    left, width_p, top, height_p = 60, 560, 34, 180
    width, height = left + width_p + 20, top + height_p + 50
    values = [v for _, points in series for v in points]
    lo, hi = _range(values, True)
    n = max(1, len(labels) - 1)

    def x(i: int) -> float:
        return left + i / n * width_p

    def y(v: float) -> float:
        return top + height_p - (v - lo) / (hi - lo) * height_p

    desc = "; ".join(
        f"{name}: "
        + ", ".join(f"{lab} {_fmt(v, percent) if v is not None else 'no data'}"
                    for lab, v in zip(labels, points, strict=True))
        for name, points in series
    )  # fmt: skip
    out = _open(kind, width, height, title, desc)
    out.append(f'<text x="8" y="18" {FONT} font-weight="bold">{escape(title)}</text>')
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        out.append(
            f'<line x1="{left}" y1="{y(v):.1f}" x2="{left + width_p}" y2="{y(v):.1f}"'
            f' stroke="{GRID}"/><text x="{left - 6}" y="{y(v) + 4:.1f}" {FONT}'
            f' text-anchor="end" fill="{NEUTRAL}">{_fmt(v, percent)}</text>'
        )
    step = max(1, len(labels) // 6)
    for i, lab in enumerate(labels):
        if i % step == 0:
            out.append(
                f'<text x="{x(i):.1f}" y="{top + height_p + 18}" {FONT} text-anchor="middle"'
                f' fill="{NEUTRAL}">{escape(lab)}</text>'
            )
    for (_, points), colour, square in zip(
        series, (PERSONALISED, CONTROL), (False, True), strict=False
    ):
        path: list[str] = []
        for i, point in enumerate(points):
            if point is None:
                continue
            path.append(f"{'M' if not path else 'L'}{x(i):.1f},{y(point):.1f}")
            if square:
                out.append(
                    f'<rect x="{x(i) - 3.5:.1f}" y="{y(point) - 3.5:.1f}" width="7" height="7"'
                    f' fill="{colour}"/>'
                )
            else:
                out.append(f'<circle cx="{x(i):.1f}" cy="{y(point):.1f}" r="3.5" fill="{colour}"/>')
        if path:
            dash = ' stroke-dasharray="5 3"' if square else ""
            out.append(
                f'<path d="{" ".join(path)}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>'
            )
    out.append(_legend(width - 250, 14, (series[0][0], series[1][0] if len(series) > 1 else "")))
    out.append("</svg>")
    return "\n".join(out)
