"""The report as one self-contained HTML file: inline CSS and SVG, no script, no network.

Every chart (drawn by pygal, slotwise.proxy.report.charts) sits beside a table of the same
figures; every figure of a table carries its JSON value in ``data-value`` (``data-field`` names
it), so a test or a tool can check the page against ``--format json``.
"""

from __future__ import annotations

from html import escape

from slotwise.proxy.report import charts
from slotwise.proxy.report.document import (
    Campaign,
    Estimate,
    Lift,
    OfferSet,
    Performance,
    Point,
    RecsList,
    Report,
    TriggerResult,
)
from slotwise.proxy.report.text import LABELS, NOT_ENOUGH, num, pct, when

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;color:#1a1a1a;margin:0;
 background:#fafafa;line-height:1.4}
main{max-width:1100px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:1.5rem}h2{font-size:1.25rem;border-top:2px solid #0072B2;padding-top:12px;
 margin-top:36px}h3{font-size:1.05rem;margin-top:24px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:.85rem;background:#fff}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right;vertical-align:top;
 white-space:nowrap}
th:first-child,td:first-child{text-align:left}th{background:#eef3f8}
.muted{color:#555}.warn{background:#fff3cd;border:1px solid #b58900;padding:6px 10px}
.ok{color:#1b5e20}.bad{color:#b00020;font-weight:bold}.faint{color:#666;font-style:italic}
.better{color:#1b5e20;font-weight:bold}.worse{color:#b00020;font-weight:bold}
figure{margin:12px 0;background:#fff;border:1px solid #ddd;display:inline-block;padding:4px}
.charts{display:flex;flex-wrap:wrap;gap:12px}
"""


def _cell(field: str, value: float | int | None, text: str, cls: str = "") -> str:
    data = "" if value is None else f' data-value="{value!r}"'
    klass = f' class="{cls}"' if cls else ""
    return f'<td data-field="{escape(field)}"{data}{klass}>{escape(text)}</td>'


def _est(field: str, e: Estimate, percent: bool = True, signed: bool = False) -> str:
    """Three cells' worth in one: the value with its interval, each bound in a data attribute."""

    def f(v: float) -> str:
        text = pct(v) if percent else num(v)
        return f"+{text}" if signed and v >= 0 else text

    if e.value is None:
        return f'<td data-field="{field}">-</td>'
    text = f(e.value)
    if e.low is not None and e.high is not None:
        text += f" [{f(e.low)}, {f(e.high)}]"
    bounds = "".join(
        f' data-{name}="{v!r}"' for name, v in (("low", e.low), ("high", e.high)) if v is not None
    )
    return f'<td data-field="{field}" data-value="{e.value!r}"{bounds}>{escape(text)}</td>'


def _row(e: Estimate, label: str, faint: bool) -> charts.Row:
    return charts.Row(label, e.value, e.low, e.high, faint)


def _lift_cells(lift: Lift) -> str:
    percent = True
    verdict = NOT_ENOUGH if lift.verdict == "not_enough_data" else lift.verdict.replace("_", " ")
    cls = {"better": "better", "worse": "worse", "not_enough_data": "faint"}.get(lift.verdict, "")
    return (
        _est(f"{lift.metric}.absolute", lift.absolute, lift.metric != "goal_per_decision", True)
        + _est(f"{lift.metric}.relative", lift.relative, percent, True)
        + f'<td class="{cls}" data-field="{lift.metric}.verdict">{escape(verdict)}</td>'
    )


def _segments(index: int, c: Campaign) -> list[str]:
    rates = [
        (
            s.segment,
            _row(s.personalised.click_rate, "personalised", s.personalised.decisions < 100),
            _row(s.control.click_rate, "control", s.control.decisions < 100),
        )
        for s in c.segments
    ]
    lift_rows = []
    for s in c.segments:
        lift = s.lifts[0]
        lift_rows.append((s.segment, _row(lift.absolute, "lift", not lift.enough_data), None))
    out = ['<div class="charts">']
    out.append(
        "<figure>"
        + charts.interval_chart(f"rates-{index}", "Click rate by segment (95% intervals)", rates)
        + "</figure>"
    )
    out.append(
        "<figure>"
        + charts.interval_chart(
            f"lift-{index}",
            "Click rate lift, personalised − control (95% intervals)",
            lift_rows,
            zero_line=True,
        )
        + "</figure>"
    )
    out.append("</div>")
    out.append(
        '<table class="segments"><thead><tr><th>segment</th><th>arm</th><th>decisions</th>'
        "<th>clicked</th><th>click rate</th><th>conversions</th><th>conversion rate</th>"
        "<th>goal per decision</th><th>revenue</th></tr></thead><tbody>"
    )
    for s in c.segments:
        for name, arm in (("personalised", s.personalised), ("control", s.control)):
            out.append(
                f'<tr data-segment="{escape(s.segment)}" data-arm="{name}">'
                f"<td>{escape(s.segment)}</td><td>{name}</td>"
                + _cell("decisions", arm.decisions, f"{arm.decisions:,}")
                + _cell("clicked", arm.clicked, f"{arm.clicked:,}")
                + _est("click_rate", arm.click_rate)
                + _cell("conversions", arm.conversions, f"{arm.conversions:,}")
                + _est("conversion_rate", arm.conversion_rate)
                + _est("goal_per_decision", arm.goal_per_decision, percent=False)
                + _cell("revenue", arm.revenue, f"{arm.revenue:,.2f}")
                + "</tr>"
            )
    out.append("</tbody></table>")
    out.append(
        '<table class="lifts"><thead><tr><th>segment</th><th>metric</th>'
        "<th>absolute lift</th><th>relative lift</th><th>reading</th></tr></thead><tbody>"
    )
    for s in c.segments:
        for lift in s.lifts:
            out.append(
                f'<tr data-segment="{escape(s.segment)}" data-metric="{lift.metric}">'
                f"<td>{escape(s.segment)}</td><td>{LABELS[lift.metric]}</td>"
                + _lift_cells(lift)
                + "</tr>"
            )
    out.append("</tbody></table>")
    return out


def _performance_table(kind: str, rows: list[Performance], limit: int) -> list[str]:
    out = [
        f'<table class="{kind}"><thead><tr><th>segment</th><th>{kind[:-1]}</th>'
        "<th>decisions</th><th>share of traffic</th><th>click rate</th>"
        "<th>goal per decision</th></tr></thead><tbody>"
    ]
    shown: dict[str, int] = {}
    hidden = 0
    for r in rows:
        shown[r.segment] = shown.get(r.segment, 0) + 1
        if shown[r.segment] > limit:
            hidden += 1
            continue
        rate = (
            _est("click_rate", r.click_rate)
            if r.enough_data
            else f'<td class="faint" data-field="click_rate">{NOT_ENOUGH}</td>'
        )
        out.append(
            f'<tr data-segment="{escape(r.segment)}" data-name="{escape(r.name)}">'
            f"<td>{escape(r.segment)}</td><td>{escape(r.name)}</td>"
            + _cell("decisions", r.decisions, f"{r.decisions:,}")
            + _cell("share", r.share, pct(r.share, 1))
            + rate
            + _est("goal_per_decision", r.goal_per_decision, percent=False)
            + "</tr>"
        )
    out.append("</tbody></table>")
    if hidden:
        out.append(f'<p class="muted">{hidden} more rows in the JSON report.</p>')
    return out


def _variants(index: int, c: Campaign) -> list[str]:
    if not c.variants:
        return ["<p class='muted'>No personalised decisions: no variants to compare.</p>"]
    overall = [v for v in c.variants if v.segment == c.segments[0].segment]
    rows = [
        (f"{v.name} ({pct(v.share, 0)})", _row(v.click_rate, "click rate", not v.enough_data),
         None)
        for v in overall
    ]  # fmt: skip
    out = [
        "<figure>"
        + charts.interval_chart(
            f"variants-{index}",
            "Click rate by variant, all traffic (share of traffic in brackets)",
            rows,
            names=("personalised", ""),
        )
        + "</figure>"
    ]
    out += _performance_table("variants", c.variants, 40)
    out.append("<h3>Combinations</h3>")
    out += _performance_table("combinations", c.combinations, 15)
    return out


def _timeline(index: int, c: Campaign) -> list[str]:
    if not c.timeline:
        return []
    labels = [when(p.start)[5:16] for p in c.timeline]

    def faint(p: Point) -> bool:
        return not p.enough_data

    out = [
        "<h3>Learning over time</h3><figure>"
        + charts.line_chart(
            f"timeline-{index}",
            "Click rate over time",
            labels,
            [
                (
                    "personalised",
                    [_row(p.personalised_click_rate, "", faint(p)) for p in c.timeline],
                ),
                ("control", [_row(p.control_click_rate, "", faint(p)) for p in c.timeline]),
            ],
        )
        + "</figure>",
        '<table class="timeline"><thead><tr><th>from</th><th>personalised</th>'
        "<th>control</th><th>personalised click rate</th><th>control click rate</th>"
        "<th>lift</th></tr></thead><tbody>",
    ]
    for p in c.timeline:
        lift = (
            _est("click_rate_lift", p.click_rate_lift, signed=True)
            if p.enough_data
            else f'<td class="faint" data-field="click_rate_lift">{NOT_ENOUGH}</td>'
        )
        out.append(
            f'<tr data-start="{p.start!r}"><td>{escape(when(p.start))}</td>'
            + _cell(
                "personalised_decisions", p.personalised_decisions, f"{p.personalised_decisions:,}"
            )
            + _cell("control_decisions", p.control_decisions, f"{p.control_decisions:,}")
            + _est("personalised_click_rate", p.personalised_click_rate)
            + _est("control_click_rate", p.control_click_rate)
            + lift
            + "</tr>"
        )
    out.append("</tbody></table>")
    return out


def _campaign(index: int, c: Campaign) -> list[str]:
    out = [
        f'<section class="campaign" data-campaign="{escape(c.name)}">',
        f"<h2>Campaign {escape(c.name)}</h2>",
        f"<p>Goal: <code>{escape(c.goal)}</code>. {c.decisions:,} decisions from"
        f" {escape(when(c.first))} to {escape(when(c.last))}.</p>",
    ]
    srm = c.sample_ratio
    if srm is None:
        out.append('<p class="warn">No control group: lift cannot be measured.</p>')
    elif srm.mismatch:
        out.append(
            f'<p class="warn bad">Sample ratio mismatch: control got'
            f" {pct(srm.observed_control_share)} of decisions, the holdout asks for"
            f" {pct(srm.expected_control_share)} (p = {srm.p_value:.2g}). The split is"
            " broken; the lifts below are suspect.</p>"
        )
    else:
        out.append(
            f'<p class="ok">Split as expected: control {pct(srm.observed_control_share)} of'
            f" decisions, holdout {pct(srm.expected_control_share)} (p = {srm.p_value:.2g}).</p>"
        )
    notes = []
    if c.fail_open:
        notes.append(
            f"{c.fail_open:,} personalised decisions failed open (counted as personalised)"
        )
    if c.reverted:
        notes.append(f"{c.reverted:,} decisions served generic by the guardrail (in neither arm)")
    if c.unserved:
        notes.append(f"{c.unserved:,} decisions not served (chooser errors)")
    if notes:
        out.append(f'<p class="muted">{escape("; ".join(notes))}.</p>')
    out.append("<h3>Personalised vs control by segment</h3>")
    out += _segments(index, c)
    out.append("<h3>Variants</h3>")
    out += _variants(index, c)
    out += _timeline(index, c)
    out.append("</section>")
    return out


def _storefront(report: Report) -> list[str]:
    k = report.storefront_kpis
    assert k is not None
    rows = [
        ("sessions", "sessions", k.sessions, f"{k.sessions:,}"),
        ("orders", "orders", k.orders, f"{k.orders:,}"),
        ("revenue", "revenue", k.revenue, f"{k.revenue:,.2f}"),
    ]
    out = [
        '<section class="storefront" data-status="ok"><h2>Storefront</h2>',
        f"<p>Sessions end after {k.timeout / 60:g} minutes without an event. The CTR of"
        " recommended sections is under Recommended lists, when there are any."
        + ("" if k.enough_data else f" All sessions: {NOT_ENOUGH}.")
        + "</p>",
        '<table class="storefront"><tbody>',
    ]
    out += [
        f"<tr><td>{label}</td>" + _cell(field, value, text) + "</tr>"
        for label, field, value, text in rows
    ]
    out += [
        "<tr><td>bounce rate</td>" + _est("bounce_rate", k.bounce_rate) + "</tr>",
        "<tr><td>conversion (sessions with an order)</td>"
        + _est("conversion_rate", k.conversion_rate)
        + "</tr>",
        "<tr><td>repeat sessions</td>" + _est("repeat_sessions", k.repeat_sessions) + "</tr>",
        "<tr><td>average order value</td>"
        + _est("average_order_value", k.average_order_value, percent=False)
        + "</tr>",
        "<tr><td>session time (seconds)</td>"
        + _est("session_seconds", k.session_seconds, percent=False)
        + "</tr>",
        "</tbody></table>",
    ]
    out += _storefront_arms(report)
    out.append("</section>")
    return out


def _verdict_cell(field: str, verdict: str) -> str:
    text = NOT_ENOUGH if verdict == "not_enough_data" else verdict.replace("_", " ")
    cls = {"better": "better", "worse": "worse", "not_enough_data": "faint"}.get(verdict, "")
    return f'<td class="{cls}" data-field="{field}">{escape(text)}</td>'


def _offer_set(index: int, o: OfferSet) -> list[str]:
    everyone = o.segments[0]
    net = [
        (a.arm, _row(a.net_per_decision, "net per decision", not a.enough_data), None)
        for a in everyone.arms
    ]
    conversion = [
        (a.arm, _row(a.conversion_rate, "conversion rate", not a.enough_data), None)
        for a in everyone.arms
    ]
    out = [
        f'<section class="offer-set" data-offer-set="{escape(o.name)}">',
        f"<h3>Offer set {escape(o.name)}</h3>",
        '<div class="charts"><figure>'
        + charts.interval_chart(
            f"offer-net-{index}",
            f"Revenue minus discount per decision by arm, {everyone.segment} (95% intervals)",
            net,
            percent=False,
            names=("net per decision", ""),
        )
        + "</figure><figure>"
        + charts.interval_chart(
            f"offer-conversion-{index}",
            f"Conversion rate by arm, {everyone.segment} (95% intervals)",
            conversion,
            names=("conversion rate", ""),
        )
        + "</figure></div>",
        '<table class="offers"><thead><tr><th>segment</th><th>arm</th><th>decisions</th>'
        "<th>converted</th><th>conversion rate</th><th>revenue per decision</th>"
        "<th>revenue − discount per decision</th><th>average discount</th>"
        "<th>conversion vs control</th><th>net vs control</th><th>reading</th></tr></thead>"
        "<tbody>",
    ]
    for seg in o.segments:
        for a in seg.arms:
            lifts = (
                _est("conversion_lift", a.conversion_lift, signed=True)
                + _est("net_lift", a.net_lift, percent=False, signed=True)
                + _verdict_cell("verdict", a.verdict)
                if a.conversion_lift is not None and a.net_lift is not None
                else '<td>-</td><td>-</td><td data-field="verdict">control</td>'
            )
            out.append(
                f'<tr data-segment="{escape(seg.segment)}" data-arm="{escape(a.arm)}">'
                f"<td>{escape(seg.segment)}</td><td>{escape(a.arm)}</td>"
                + _cell("decisions", a.decisions, f"{a.decisions:,}")
                + _cell("converted", a.converted, f"{a.converted:,}")
                + _est("conversion_rate", a.conversion_rate)
                + _est("revenue_per_decision", a.revenue_per_decision, percent=False)
                + _est("net_per_decision", a.net_per_decision, percent=False)
                + _est("average_discount", a.average_discount, percent=False)
                + lifts
                + "</tr>"
            )
    out.append("</tbody></table></section>")
    return out


def _offers(report: Report) -> list[str]:
    out = [
        '<section class="offers" data-status="ok"><h2>Offers</h2>',
        "<p>Each arm of an offer set against its control (the holdout, shown no offer), by"
        " segment. A purchase joins the offer it redeemed (its <code>offer_id</code>) with"
        " that offer's discount cost, or the offer shown and not redeemed (its"
        " <code>decision_id</code>) without one, as the learner joins them. Net is revenue"
        " minus discount cost; the average discount is per converted decision.</p>",
    ]
    for index, o in enumerate(report.offer_sets):
        out += _offer_set(index, o)
    out.append("</section>")
    return out


def _triggers(results: list[TriggerResult]) -> list[str]:
    rows = [
        (
            t.name,
            _row(t.triggered.conversion_rate, "triggered", not t.enough_data),
            _row(t.holdout.conversion_rate, "holdout", not t.enough_data),
        )
        for t in results
    ]
    out = [
        '<section class="triggers" data-status="ok"><h2>Triggered campaigns</h2>',
        "<p>Each trigger's decisions against its own holdout (drawn per trigger and"
        " visitor): conversion rate and its lift.</p>",
        "<figure>"
        + charts.interval_chart(
            "triggers",
            "Conversion rate, triggered vs holdout (95% intervals)",
            rows,
            names=("triggered", "holdout"),
        )
        + "</figure>",
        '<table class="triggers"><thead><tr><th>trigger</th><th>triggered</th>'
        "<th>conversion rate</th><th>holdout</th><th>conversion rate</th>"
        "<th>absolute lift</th><th>relative lift</th><th>reading</th></tr></thead><tbody>",
    ]
    for t in results:
        out.append(
            f'<tr data-trigger="{escape(t.name)}"><td>{escape(t.name)}</td>'
            + _cell("triggered.decisions", t.triggered.decisions, f"{t.triggered.decisions:,}")
            + _est("triggered.conversion_rate", t.triggered.conversion_rate)
            + _cell("holdout.decisions", t.holdout.decisions, f"{t.holdout.decisions:,}")
            + _est("holdout.conversion_rate", t.holdout.conversion_rate)
            + _est("absolute", t.absolute, signed=True)
            + _est("relative", t.relative, signed=True)
            + _verdict_cell("verdict", t.verdict)
            + "</tr>"
        )
    out.append("</tbody></table></section>")
    return out


def _recommendations(lists: list[RecsList]) -> list[str]:
    rows = [
        (f"{k.name} #{p.position}", _row(p.ctr, "CTR", p.impressions < 100), None)
        for k in lists
        for p in k.positions[:10]
    ]
    out = [
        '<section class="recommendations" data-status="ok"><h2>Recommended lists</h2>',
        "<p>Impressions and clicks of each list's positions (the trackers the proxy writes"
        " per item, the personalised and control decisions together), then each list's"
        " personalised decisions against its control group (<code>holdout</code>: the shop's"
        " own list, tracked alike) by segment.</p>",
        "<figure>"
        + charts.interval_chart(
            "recs-ctr", "CTR by list and position (95% intervals)", rows, names=("CTR", "")
        )
        + "</figure>",
        '<table class="recommendations"><thead><tr><th>list</th><th>position</th>'
        "<th>decisions</th><th>impressions</th><th>clicks</th><th>CTR</th><th>add-to-carts"
        "</th><th>purchases</th><th>revenue</th></tr></thead><tbody>",
    ]
    for k in lists:
        out.append(
            f'<tr data-list="{escape(k.name)}" data-position="all"><td>{escape(k.name)}</td>'
            "<td>all</td>"
            + _cell("decisions", k.decisions, f"{k.decisions:,}")
            + _cell("impressions", k.impressions, f"{k.impressions:,}")
            + _cell("clicks", k.clicks, f"{k.clicks:,}")
            + _est("ctr", k.ctr)
            + _cell("carts", k.carts, f"{k.carts:,}")
            + _cell("purchases", k.purchases, f"{k.purchases:,}")
            + _cell("revenue", k.revenue, f"{k.revenue:,.2f}")
            + "</tr>"
        )
        for p in k.positions:
            out.append(
                f'<tr data-list="{escape(k.name)}" data-position="{p.position}">'
                f"<td>{escape(k.name)}</td><td>{p.position}</td><td></td>"
                + _cell("impressions", p.impressions, f"{p.impressions:,}")
                + _cell("clicks", p.clicks, f"{p.clicks:,}")
                + _est("ctr", p.ctr)
                + "<td></td><td></td><td></td></tr>"
            )
    out.append("</tbody></table>")
    out += _recs_arms(lists)
    out.append("</section>")
    return out


def _recs_arms(lists: list[RecsList]) -> list[str]:
    """Per list and segment: CTR and conversion, personalised against control."""
    compared = [k for k in lists if any(s.control is not None for s in k.segments)]
    if not compared:
        return ["<p class='muted'>No list has a control group (<code>holdout</code>): no"
                " comparison.</p>"]  # fmt: skip
    rows = []
    for k in compared:
        seg = k.segments[0]
        c = seg.control
        rows.append((
            f"{k.name} ({seg.segment})",
            _row(seg.personalised.ctr, "personalised", not seg.personalised.enough_data),
            _row(c.ctr, "control", not c.enough_data) if c is not None else None,
        ))  # fmt: skip
    out = [
        "<h3>Personalised vs control</h3><figure>"
        + charts.interval_chart(
            "recs-arms", "List CTR, personalised vs control (95% intervals)", rows
        )
        + "</figure>",
        '<table class="recs-arms"><thead><tr><th>list</th><th>segment</th><th>arm</th>'
        "<th>decisions</th><th>impressions</th><th>clicks</th><th>CTR</th>"
        "<th>conversion</th><th>CTR lift</th><th>relative</th><th>reading</th>"
        "<th>conversion lift</th><th>relative</th><th>reading</th></tr></thead><tbody>",
    ]
    for k in compared:
        for seg in k.segments:
            for arm_name, arm in (("personalised", seg.personalised), ("control", seg.control)):
                if arm is None:
                    continue
                lifts = (
                    "".join(_lift_cells(lift) for lift in seg.lifts)
                    if arm_name == "personalised" and seg.lifts
                    else "<td></td>" * 6
                )
                out.append(
                    f'<tr data-list="{escape(k.name)}" data-segment="{escape(seg.segment)}"'
                    f' data-arm="{arm_name}"><td>{escape(k.name)}</td>'
                    f"<td>{escape(seg.segment)}</td><td>{arm_name}</td>"
                    + _cell("decisions", arm.decisions, f"{arm.decisions:,}")
                    + _cell("impressions", arm.impressions, f"{arm.impressions:,}")
                    + _cell("clicks", arm.clicks, f"{arm.clicks:,}")
                    + _est("ctr", arm.ctr)
                    + _est("conversion_rate", arm.conversion_rate)
                    + lifts
                    + "</tr>"
                )
    out.append("</tbody></table>")
    return out


_STORE_METRICS = (
    ("conversion_rate", "conversion", True),
    ("bounce_rate", "bounce rate", True),
    ("repeat_sessions", "repeat sessions", True),
    ("average_order_value", "average order value", False),
    ("session_seconds", "session time (s)", False),
)


def _storefront_arms(report: Report) -> list[str]:
    """The storefront KPIs of the sessions exposed to each campaign or list, by arm."""
    arms = [a for a in report.storefront_by_arm if any(s.lifts for s in a.segments)]
    if not arms:
        return []
    rows = []
    for a in arms:
        seg = a.segments[0]
        p, c = seg.personalised, seg.control
        if p is not None and c is not None:
            rows.append((
                f"{a.name} ({seg.segment})",
                _row(p.conversion_rate, "personalised", not p.enough_data),
                _row(c.conversion_rate, "control", not c.enough_data),
            ))  # fmt: skip
    out = [
        '<section class="storefront-arms"><h3>Storefront KPIs by arm</h3>',
        "<p>The sessions that were shown a decision of each campaign or list (an impression"
        " pixel carrying the visitor's id), by that decision's arm and segment.</p>",
        "<figure>"
        + charts.interval_chart(
            "storefront-arms",
            "Session conversion, personalised vs control (95% intervals)",
            rows,
        )  # fmt: skip
        + "</figure>",
        '<table class="storefront-arms"><thead><tr><th>campaign or list</th><th>segment</th>'
        "<th>arm</th><th>sessions</th>"
        + "".join(f"<th>{escape(label)}</th>" for _, label, _ in _STORE_METRICS)
        + "</tr></thead><tbody>",
    ]
    for a in arms:
        for seg in a.segments:
            for arm_name, k in (("personalised", seg.personalised), ("control", seg.control)):
                if k is None:
                    continue
                cells = "".join(
                    _est(field, getattr(k, field), percent) for field, _, percent in _STORE_METRICS
                )
                note = "" if k.enough_data else f' <span class="faint">({NOT_ENOUGH})</span>'
                out.append(
                    f'<tr data-campaign="{escape(a.name)}" data-segment="{escape(seg.segment)}"'
                    f' data-arm="{arm_name}"><td>{escape(a.name)}</td>'
                    f"<td>{escape(seg.segment)}</td><td>{arm_name}{note}</td>"
                    + _cell("sessions", k.sessions, f"{k.sessions:,}")
                    + cells
                    + "</tr>"
                )
            if seg.lifts:
                out.append(
                    f'<tr data-campaign="{escape(a.name)}" data-segment="{escape(seg.segment)}"'
                    ' data-arm="lift"><td></td><td></td><td>lift (reading)</td><td></td>'
                    + "".join(_lift_text(lift) for lift in seg.lifts)
                    + "</tr>"
                )
    out.append("</tbody></table></section>")
    return out


def _lift_text(lift: Lift) -> str:
    percent = lift.metric not in ("average_order_value", "session_seconds")
    e = lift.absolute
    verdict = NOT_ENOUGH if lift.verdict == "not_enough_data" else lift.verdict.replace("_", " ")
    if e.value is None:
        return f'<td data-field="{lift.metric}.absolute">- ({escape(verdict)})</td>'

    def f(v: float) -> str:
        text = pct(v) if percent else num(v)
        return f"+{text}" if v >= 0 else text

    text = f(e.value)
    if e.low is not None and e.high is not None:
        text += f" [{f(e.low)}, {f(e.high)}]"
    bounds = "".join(
        f' data-{name}="{v!r}"' for name, v in (("low", e.low), ("high", e.high)) if v is not None
    )
    return (
        f'<td data-field="{lift.metric}.absolute" data-value="{e.value!r}"{bounds}'
        f' data-verdict="{lift.verdict}">{escape(text)} ({escape(verdict)})</td>'
    )


def _range(report: Report) -> str:
    if report.since is None and report.until is None:
        return "All decisions in the log"
    if report.until is None:
        return f"Decisions from {when(report.since)}"
    if report.since is None:
        return f"Decisions before {when(report.until)}"
    return f"Decisions from {when(report.since)} to {when(report.until)}"


def render(report: Report, *, title: str = "slotwise report", refresh: int | None = None) -> str:
    t = report.totals
    head = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="refresh" content="{refresh}">' if refresh else "",
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body><main>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="muted">Source: {escape(report.source)}. Generated'
        f" {escape(when(report.generated_at))}. {escape(_range(report))}. Segments by:"
        f" {escape(', '.join(report.segment_by) or 'none (all traffic)')}. Intervals are 95%;"
        f' "{NOT_ENOUGH}" marks figures with fewer than 100 decisions or 5 events behind'
        " them. In the charts a bar or dot is the figure, its whisker the 95% interval, and a"
        " hatched one has too little data behind it; hovering one shows its figures, and the"
        " table beside each chart has them all.</p>",
        f'<p class="muted">{t.decisions:,} decisions, {t.events:,} events'
        f" ({t.matched_events:,} matched to a decision, {t.unmatched_events:,} without one in"
        f" range, {t.late_events:,} late).</p>",
    ]
    body: list[str] = []
    if not report.campaigns:
        body.append("<p>No campaign decisions in the selection.</p>")
    for index, c in enumerate(report.campaigns):
        body += _campaign(index, c)
    if report.offer_sets:
        body += _offers(report)
    if report.trigger_results:
        body += _triggers(report.trigger_results)
    if report.storefront_kpis is not None:
        body += _storefront(report)
    if report.recommendations:
        body += _recommendations(report.recommendations)
    for name in ("offers", "triggers", "storefront"):
        section = getattr(report, name)
        if section.status != "no_data":
            continue
        body.append(
            f'<section class="{name}" data-status="{section.status}"><h2>'
            f"{name.capitalize()}</h2><p class='muted'>No data: {escape(section.reason)}.</p>"
            "</section>"
        )
    return "\n".join([*head, *body, "</main></body></html>\n"])
