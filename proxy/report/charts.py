"""Charts drawn by pygal, rendered to inline SVG when the report is built: no script, no network.

pygal's SVG carries a script of its own (its tooltips' configuration, and by default a link to
their JavaScript): ``js=[]`` drops the link and an XML filter drops the inline script, pygal's
comments (which name its web site) and the root's ``xmlns`` (an SVG inside HTML needs none),
so the page references nothing outside itself. Each figure keeps a native tooltip (a ``<title>``
on its bar or dot), which the browser shows without script.

Colours are the Okabe-Ito palette (distinguishable with every common colour-vision
deficiency), drawn opaque so they are exactly those colours; the control arm's line is also
dashed, a figure with too little data behind it is drawn hatched, and every chart has a
``<title>`` and a ``<desc>`` and sits beside a table of the same figures, so nothing is told by
colour alone. Every chart is an ``<svg class="chart pygal-chart" data-chart=KIND role="img">``
(the tests find them by that).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree

import pygal
from pygal.etree import etree as pygal_etree
from pygal.style import Style

# pygal appends to sys.meta_path a finder for its map plugins (pygal.maps.*, unused here) with
# only the old find_module API; on Python 3.11 every import that no other finder resolves then
# raises an ImportWarning through it (an error under the tests' warning filter). Without it
# pygal's charts work the same.
sys.meta_path[:] = [f for f in sys.meta_path if type(f) is not pygal.PluginImportFixer]
# pygal builds its tree with lxml when lxml is installed (not a dependency here); the filter
# below edits an xml.etree tree, and lxml would write the namespace URL back: always xml.etree
pygal_etree.to_etree()

PERSONALISED = "#0072B2"  # blue
CONTROL = "#D55E00"  # vermillion
# the rest of Okabe-Ito, for charts with more series
PALETTE = (PERSONALISED, CONTROL, "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#F0E442")

STYLE = Style(
    colors=PALETTE,
    font_family="system-ui, -apple-system, 'Segoe UI', sans-serif",
    background="#ffffff",
    plot_background="#ffffff",
    foreground="#1a1a1a",
    foreground_strong="#000000",
    foreground_subtle="#555555",
    opacity="1",
    opacity_hover="1",
    stroke_opacity="1",
    stroke_opacity_hover="1",
    guide_stroke_color="#cccccc",
    major_guide_stroke_color="#999999",
    title_font_size=15,
    legend_font_size=13,
    label_font_size=12,
    major_label_font_size=12,
    no_data_font_size=16,
    transition="0ms",
)


@dataclass(frozen=True, slots=True)
class Row:
    """One labelled value with its interval (None: undefined, drawn as "no data")."""

    label: str
    value: float | None
    low: float | None
    high: float | None
    faint: bool = False  # not enough data: drawn hatched and described so


def _fmt(value: float, percent: bool) -> str:
    return f"{100 * value:.1f}%" if percent else f"{value:.3g}"


def _describe(r: Row, percent: bool) -> str:
    if r.value is None:
        return f"{r.label} no data".strip()
    text = f"{r.label} {_fmt(r.value, percent)}".strip()
    if r.low is not None and r.high is not None:
        text += f" ({_fmt(r.low, percent)} to {_fmt(r.high, percent)})"
    return text + (" not enough data" if r.faint else "")


def _range(rows: Sequence[Row | None], include_zero: bool) -> tuple[float, float]:
    """The axis over every value and interval bound (pygal scales to the values alone, which
    would cut the intervals off)."""
    found = [
        v
        for r in rows
        if r is not None
        for v in (r.value, r.low, r.high)
        if v is not None and math.isfinite(v)
    ]
    if include_zero:
        found.append(0.0)
    if not found:
        return 0.0, 1.0
    low, high = min(found), max(found)
    if high == low:
        high = low + 1.0
    pad = (high - low) * 0.05
    # rates are never negative: no axis below zero unless a value is
    return (low - pad if low - pad >= 0 or low < 0 else 0.0), high + pad


def _point(r: Row | None, fill: str, percent: bool, where: str) -> dict[str, Any] | None:
    """A pygal value with its interval, its native tooltip and, when faint, a hatched fill
    (``fill`` is the series' pattern; the style goes on the bar or dot itself, where it beats
    pygal's stylesheet)."""
    if r is None or r.value is None:
        return None
    point: dict[str, Any] = {"value": r.value, "tooltip": f"{where}: {_describe(r, percent)}"}
    if r.low is not None and r.high is not None:
        point["ci"] = {"low": r.low, "high": r.high}
    if r.faint:
        point["node"] = {"style": f"fill:url(#{fill});stroke-width:2"}
    return point


def _hatches(kind: str, count: int) -> tuple[list[str], list[str]]:
    """Per series a pattern of stripes in its colour (ids unique in the page: the kind's)."""
    ids = [f"{kind}-faint-{i}" for i in range(count)]
    defs = [
        f'<pattern id="{id}" width="6" height="6" patternUnits="userSpaceOnUse"'
        f' patternTransform="rotate(45)"><rect width="6" height="6" fill="#ffffff"/>'
        f'<rect width="3" height="6" fill="{PALETTE[i % len(PALETTE)]}"/></pattern>'
        for i, id in enumerate(ids)
    ]
    return ids, defs


def _clean(kind: str, desc: str) -> Callable[[Any], Any]:
    """pygal's XML filter: no script, no comment, no namespace URL; the test hooks, the role and
    the accessible description; ``<title>`` and ``<desc>`` first, where assistive tools look."""

    def apply(root: Any) -> Any:
        for parent in list(root.iter()):
            for child in list(parent):
                if child.tag == "script" or not isinstance(child.tag, str):
                    parent.remove(child)
        root.attrib.pop("xmlns", None)
        root.set("data-chart", kind)
        root.set("role", "img")
        title = root.find("title")
        root.remove(title)
        description = ElementTree.Element("desc")
        description.text = desc
        root.insert(0, description)
        root.insert(0, title)
        return root

    return apply


def _render(chart: Any, kind: str, desc: str) -> str:
    chart.uuid = kind  # pygal prefixes its CSS with the chart's id: stable, one per page
    chart.add_xml_filter(_clean(kind, desc))
    return str(chart.render())


def _config(title: str, percent: bool, width: int, height: int, legend: bool) -> dict[str, Any]:
    return {
        "title": title,
        "style": STYLE,
        "js": [],  # no tooltip script from pygal's site
        "classes": ["chart", "pygal-chart"],
        "disable_xml_declaration": True,
        "explicit_size": True,
        "width": width,
        "height": height,
        "show_legend": legend,
        "legend_at_bottom": True,
        "legend_at_bottom_columns": 2,
        "truncate_label": 28,
        "truncate_legend": 30,
        "no_data_text": "no data",
        "value_formatter": lambda v: _fmt(v, percent),
        "margin": 12,
        "margin_right": 28,  # room for the last tick's label
        "max_scale": 8,  # at most 8 ticks: their labels stay apart at this width
    }


def interval_chart(
    kind: str,
    title: str,
    rows: Sequence[tuple[str, Row, Row | None]],
    *,
    percent: bool = True,
    zero_line: bool = False,
    names: tuple[str, str] = ("personalised", "control"),
) -> str:
    """Horizontal bars with 95% interval whiskers: per group one or two bars (personalised,
    control), the first group at the top."""
    second = any(b is not None for _, _, b in rows)
    groups = list(reversed(rows))  # pygal draws the first category at the bottom
    bars = 1 + second
    height = 96 + 28 * second + max(1, len(rows)) * (22 * bars + 14)
    fills, defs = _hatches(kind, bars)
    chart = pygal.HorizontalBar(
        **_config(title, percent, 500, height, second),
        range=_range([r for _, a, b in rows for r in (a, b)], True),
        defs=defs,
    )
    chart.x_labels = [group for group, _, _ in groups]
    chart.add(names[0], [_point(a, fills[0], percent, group) for group, a, _ in groups])
    if second:
        chart.add(names[1], [_point(b, fills[1], percent, group) for group, _, b in groups])
    desc = "; ".join(
        f"{group}: " + ", ".join(_describe(r, percent) for r in (a, b) if r is not None)
        for group, a, b in rows
    )
    if zero_line:
        desc += ". Bars start at zero: a bar to the left is a negative difference."
    return _render(chart, kind, desc)


def line_chart(
    kind: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[Row]]],
    *,
    percent: bool = True,
) -> str:
    """Lines over time (personalised solid, control dashed), each point with its interval."""
    fills, defs = _hatches(kind, len(series))
    chart = pygal.Line(
        **_config(title, percent, 680, 320, True),
        defs=defs,
        range=_range([r for _, points in series for r in points], True),
        x_label_rotation=30 if len(labels) > 8 else 0,
        show_minor_x_labels=len(labels) <= 12,
        x_labels_major_count=8,
        allow_interruptions=True,
        dots_size=3.5,
    )
    chart.x_labels = list(labels)
    for index, (name, points) in enumerate(series):
        values = [
            _point(r, fills[index], percent, label) for label, r in zip(labels, points, strict=True)
        ]
        dashed = {"width": 2, "dasharray": "6,4"} if index else {"width": 2}
        chart.add(name, values, stroke_style=dashed)
    desc = "; ".join(
        f"{name}: "
        + ", ".join(f"{lab} {_describe(r, percent)}" for lab, r in zip(labels, points, strict=True))
        for name, points in series
    )
    return _render(chart, kind, desc)
