"""The report as text (``--format text``): what a person reads in a terminal."""

from __future__ import annotations

from datetime import UTC, datetime

from slotwise.proxy.report.document import (
    Arm,
    Campaign,
    Estimate,
    Lift,
    OfferArm,
    OfferSet,
    RecsList,
    Report,
    TriggerResult,
)

NOT_ENOUGH = "not enough data"


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def pct(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}%"


def num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def interval(e: Estimate, percent: bool = True, signed: bool = False) -> str:
    """``value [low, high]``; ``-`` when undefined."""

    def fmt(v: float) -> str:
        text = pct(v) if percent else num(v)
        return f"+{text}" if signed and v >= 0 else text

    if e.value is None:
        return "-"
    if e.low is None or e.high is None:
        return fmt(e.value)
    return f"{fmt(e.value)} [{fmt(e.low)}, {fmt(e.high)}]"


LABELS = {
    "click_rate": "click rate",
    "conversion_rate": "conversion rate",
    "goal_per_decision": "goal per decision",
    "ctr": "CTR",
    "bounce_rate": "bounce rate",
    "repeat_sessions": "repeat sessions",
    "average_order_value": "average order value",
    "session_seconds": "session time (s)",
}
_MEANS = ("goal_per_decision", "average_order_value", "session_seconds")


def lift_text(lift: Lift) -> str:
    percent = lift.metric not in _MEANS
    absolute = interval(lift.absolute, percent, signed=True)
    if percent:
        absolute = absolute.replace("%", " pts")
    relative = interval(lift.relative, True, signed=True)
    verdict = NOT_ENOUGH if lift.verdict == "not_enough_data" else lift.verdict.replace("_", " ")
    return f"{LABELS[lift.metric]}: {absolute} abs, {relative} rel ({verdict})"


def _arm(name: str, arm: Arm) -> str:
    return (
        f"    {name:<13} {arm.decisions:>9} decisions  click rate"
        f" {interval(arm.click_rate)}  conversions {arm.conversions}"
        f"  goal/decision {interval(arm.goal_per_decision, percent=False)}"
    )


def campaign_text(c: Campaign) -> list[str]:
    lines = [
        f"campaign {c.name}  (goal: {c.goal}; {c.decisions} decisions,"
        f" {when(c.first)} .. {when(c.last)})"
    ]
    extra = []
    if c.fail_open:
        extra.append(f"{c.fail_open} personalised decisions failed open (counted personalised)")
    if c.reverted:
        extra.append(f"{c.reverted} served generic by the guardrail (in neither arm)")
    if c.unserved:
        extra.append(f"{c.unserved} not served (chooser errors)")
    lines += [f"  note: {e}" for e in extra]
    srm = c.sample_ratio
    if srm is None:
        lines.append("  split: no control group to compare with")
    else:
        flag = (
            "MISMATCH: the split is not what the holdout asks; lift is suspect"
            if (srm.mismatch)
            else "ok"
        )
        lines.append(
            f"  split: control {pct(srm.observed_control_share)} of decisions, expected"
            f" {pct(srm.expected_control_share)} (chi2 {srm.chi2:.2f}, p {srm.p_value:.3g}):"
            f" {flag}"
        )
    lines.append("  personalised vs control by segment:")
    for s in c.segments:
        lines.append(f"  [{s.segment}]")
        lines.append(_arm("personalised", s.personalised))
        lines.append(_arm("control", s.control))
        for lift in s.lifts:
            lines.append(f"    lift {lift_text(lift)}")
    if c.variants:
        lines.append("  variants (personalised decisions; share of the segment's):")
        for v in c.variants:
            rate = interval(v.click_rate) if v.enough_data else f"{NOT_ENOUGH} ({v.decisions})"
            lines.append(
                f"    [{v.segment}] {v.name:<28} {v.decisions:>8} ({pct(v.share, 1):>6})"
                f"  click rate {rate}"
            )
    if c.combinations:
        lines.append("  combinations:")
        for v in c.combinations[:60]:
            rate = interval(v.click_rate) if v.enough_data else f"{NOT_ENOUGH} ({v.decisions})"
            lines.append(
                f"    [{v.segment}] {v.name}  {v.decisions} ({pct(v.share, 1)})  click rate {rate}"
            )
        if len(c.combinations) > 60:
            lines.append(f"    ... {len(c.combinations) - 60} more (see --format json)")
    if c.timeline:
        lines.append("  over time (click rate, personalised vs control):")
        for p in c.timeline:
            shown = interval(p.click_rate_lift, signed=True) if p.enough_data else NOT_ENOUGH
            shown = shown.replace("%", " pts")
            lines.append(
                f"    {when(p.start)}  {p.personalised_decisions:>7} / {p.control_decisions:<6}"
                f"  {pct(p.personalised_click_rate.value)} vs {pct(p.control_click_rate.value)}"
                f"  lift {shown}"
            )
    return lines


def _offer_arm(a: OfferArm) -> str:
    line = (
        f"    {a.arm:<18} {a.decisions:>8} decisions  conversion {interval(a.conversion_rate)}"
        f"  revenue/decision {interval(a.revenue_per_decision, percent=False)}"
        f"  net/decision {interval(a.net_per_decision, percent=False)}"
        f"  avg discount {interval(a.average_discount, percent=False)}"
    )
    if a.net_lift is not None and a.conversion_lift is not None:
        verdict = NOT_ENOUGH if a.verdict == "not_enough_data" else a.verdict.replace("_", " ")
        conversion = interval(a.conversion_lift, signed=True).replace("%", " pts")
        line += (
            f"\n      vs control: conversion {conversion}, net/decision"
            f" {interval(a.net_lift, percent=False, signed=True)} ({verdict})"
        )
    elif not a.enough_data:
        line += f"  ({NOT_ENOUGH})"
    return line


def offers_text(sets: list[OfferSet]) -> list[str]:
    lines = ["offers (net = revenue - discount cost; intervals are 95%):"]
    for offer_set in sets:
        lines.append(f"  offer set {offer_set.name}")
        for segment in offer_set.segments:
            lines.append(f"  [{segment.segment}]")
            lines += [_offer_arm(a) for a in segment.arms]
    return lines


def triggers_text(results: list[TriggerResult]) -> list[str]:
    lines = ["triggers (conversion rate, triggered vs its holdout):"]
    for t in results:
        verdict = NOT_ENOUGH if t.verdict == "not_enough_data" else t.verdict.replace("_", " ")
        lines.append(
            f"  {t.name}: triggered {t.triggered.decisions} decisions"
            f" {interval(t.triggered.conversion_rate)}, holdout {t.holdout.decisions}"
            f" {interval(t.holdout.conversion_rate)}; lift"
            f" {interval(t.absolute, signed=True).replace('%', ' pts')} abs,"
            f" {interval(t.relative, signed=True)} rel ({verdict})"
        )
    return lines


def recommendations_text(lists: list[RecsList]) -> list[str]:
    lines = ["recommended lists (CTR = clicks / impressions):"]
    for k in lists:
        ctr = interval(k.ctr) if k.enough_data else f"{interval(k.ctr)} ({NOT_ENOUGH})"
        lines.append(
            f"  {k.name}: {k.decisions} decisions, {k.impressions} impressions, {k.clicks}"
            f" clicks, CTR {ctr}; {k.carts} add-to-carts, {k.purchases} purchases,"
            f" revenue {k.revenue:.2f}"
        )
        for p in k.positions:
            lines.append(
                f"    position {p.position:>2}: {p.impressions:>7} shown {p.clicks:>6} clicks"
                f"  CTR {interval(p.ctr)}"
            )
        for seg in k.segments if any(s.control is not None for s in k.segments) else ():
            lines.append(f"    {seg.segment}:")
            for name, arm in (("personalised", seg.personalised), ("control", seg.control)):
                if arm is None:
                    continue
                ctr = interval(arm.ctr) + ("" if arm.enough_data else f" ({NOT_ENOUGH})")
                lines.append(
                    f"      {name:<12} {arm.decisions:>7} decisions {arm.impressions:>7} shown"
                    f" {arm.clicks:>6} clicks  CTR {ctr}; conversion"
                    f" {interval(arm.conversion_rate)}"
                )
            lines += [f"      lift {lift_text(lift)}" for lift in seg.lifts]
    return lines


def storefront_arms_text(report: Report) -> list[str]:
    lines = []
    for a in report.storefront_by_arm:
        if not any(s.lifts for s in a.segments):
            continue
        lines.append(f"  sessions exposed to {a.name}, by arm:")
        for seg in a.segments:
            lines.append(f"    {seg.segment}:")
            for name, k in (("personalised", seg.personalised), ("control", seg.control)):
                if k is None:
                    continue
                note = "" if k.enough_data else f" ({NOT_ENOUGH})"
                lines.append(
                    f"      {name:<12} {k.sessions:>6} sessions{note}: conversion"
                    f" {interval(k.conversion_rate)}; bounce {interval(k.bounce_rate)};"
                    f" repeat {interval(k.repeat_sessions)}; order value"
                    f" {interval(k.average_order_value, percent=False)}; time"
                    f" {interval(k.session_seconds, percent=False)} s"
                )
            lines += [f"      lift {lift_text(lift)}" for lift in seg.lifts]
    return lines


def render(report: Report) -> str:
    t = report.totals
    lines = [
        f"slotwise report: {report.source}",
        f"  {t.decisions} decisions, {t.events} events ({t.matched_events} matched,"
        f" {t.unmatched_events} without a decision in range, {t.late_events} late,"
        f" {t.ignored_events} not campaign events); {t.outside} decisions outside the"
        f" selection; {t.unreadable} unreadable",
        f"  segments by: {', '.join(report.segment_by) or '(none: all traffic)'};"
        f" join window {report.window:g} s; intervals are 95%",
        "",
    ]
    if not report.campaigns:
        lines.append("no campaign decisions in the selection")
    for c in report.campaigns:
        lines += campaign_text(c)
        lines.append("")
    for name in ("offers", "triggers", "storefront"):
        section = getattr(report, name)
        if section.status == "no_data":
            lines.append(f"{name}: no data: {section.reason}")
    if report.offer_sets:
        lines += offers_text(report.offer_sets)
    if report.trigger_results:
        lines += triggers_text(report.trigger_results)
    if report.recommendations:
        lines += recommendations_text(report.recommendations)
    kpis = report.storefront_kpis
    if kpis is not None:
        lines += [
            f"storefront: {kpis.sessions} sessions (ending after {kpis.timeout / 60:g} minutes"
            " without an event)",
            f"  bounce rate {interval(kpis.bounce_rate)};"
            f" conversion {interval(kpis.conversion_rate)};"
            f" repeat sessions {interval(kpis.repeat_sessions)}",
            f"  {kpis.orders} orders, revenue {kpis.revenue:.2f}, average order value"
            f" {interval(kpis.average_order_value, percent=False)}; session time"
            f" {interval(kpis.session_seconds, percent=False)} s",
            *storefront_arms_text(report),
        ]
    return "\n".join(lines) + "\n"
