"""The report as data: the ``--format json`` document, its schema, and how it is built.

The structs below are the schema (``slotwise report --schema`` prints it as JSON Schema;
docs/reports.md describes every field). Figures come with their 95% intervals
(slotwise.proxy.report.stats); ``enough_data: false`` marks a figure that has too little data
behind it to be read as a finding, and the text and HTML views say "not enough data" there.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Literal, Protocol

import msgspec

from slotwise.proxy.report import stats
from slotwise.proxy.report.storefront import SessionCounts
from slotwise.proxy.report.tally import (
    ALL,
    CONTROL,
    PERSONALISED,
    TRIGGERED,
    ArmTally,
    CampaignTally,
    ListCells,
    ListTally,
    ReportTally,
    Sections,
    merge,
)

SCHEMA = "slotwise.report/1"
MAX_POINTS = 24  # the timeline's points at most


class Estimate(msgspec.Struct, frozen=True):
    """A figure with its 95% interval; null where the data cannot support it."""

    value: float | None
    low: float | None
    high: float | None

    @classmethod
    def of(cls, interval: stats.Interval) -> Estimate:
        return cls(interval.value, interval.low, interval.high)


class Arm(msgspec.Struct, frozen=True):
    """One arm (personalised or control) of one segment."""

    decisions: int
    impressions: int  # decisions with at least one impression event
    clicked: int  # decisions with at least one click
    clicks: int
    converted: int
    conversions: int
    revenue: float
    discount: float
    click_rate: Estimate  # clicked / decisions, Wilson
    conversion_rate: Estimate  # converted / decisions, Wilson
    goal_per_decision: Estimate  # the campaign's goal, mean per decision, normal
    revenue_per_decision: Estimate


class Lift(msgspec.Struct, frozen=True):
    """Personalised against control on one metric."""

    metric: Literal[
        "click_rate", "conversion_rate", "goal_per_decision", "ctr", "bounce_rate",
        "repeat_sessions", "average_order_value", "session_seconds",
    ]  # fmt: skip
    absolute: Estimate  # personalised - control
    relative: Estimate  # personalised / control - 1
    enough_data: bool
    verdict: Literal["better", "worse", "no_difference", "not_enough_data"]


class Segment(msgspec.Struct, frozen=True):
    segment: str
    personalised: Arm
    control: Arm
    lifts: list[Lift]


class SampleRatio(msgspec.Struct, frozen=True):
    """The split test: is the control's share what the holdout shares expect?"""

    expected_control_share: float
    observed_control_share: float
    chi2: float
    p_value: float
    mismatch: bool


class Performance(msgspec.Struct, frozen=True):
    """A variant of a slot, or a combination of variants, in one segment (personalised)."""

    segment: str
    name: str  # "slot=variant" or "slot=variant, slot=variant, ..."
    decisions: int
    share: float  # of the segment's personalised decisions
    click_rate: Estimate
    goal_per_decision: Estimate
    enough_data: bool


class Point(msgspec.Struct, frozen=True):
    """One interval of time: both arms' click rate and goal, and the click rate lift."""

    start: float
    end: float
    personalised_decisions: int
    control_decisions: int
    personalised_click_rate: Estimate
    control_click_rate: Estimate
    personalised_goal: Estimate
    control_goal: Estimate
    click_rate_lift: Estimate
    enough_data: bool


class Campaign(msgspec.Struct, frozen=True):
    name: str
    goal: str
    first: float | None  # the first and last decision's time
    last: float | None
    decisions: int  # in the two arms
    fail_open: int  # personalised decisions served unchanged (counted as personalised)
    reverted: int  # served generic by a guardrail (in neither arm)
    unserved: int
    sample_ratio: SampleRatio | None
    segments: list[Segment]  # "all" first
    variants: list[Performance]
    combinations: list[Performance]
    timeline: list[Point]


class Section(msgspec.Struct, frozen=True):
    """Whether a part of the report (offers, triggers, storefront) has data, and why not."""

    status: Literal["no_data", "ok"]
    reason: str


class StorefrontKpis(msgspec.Struct, frozen=True):
    """Sessions of the visitors' events (slotwise.proxy.report.storefront defines them)."""

    timeout: float  # seconds of inactivity that end a session
    sessions: int
    repeat_sessions: Estimate  # share of sessions that are not their visitor's first
    bounce_rate: Estimate  # sessions of a single page event
    conversion_rate: Estimate  # sessions with a purchase
    orders: int
    revenue: float
    average_order_value: Estimate
    session_seconds: Estimate  # mean, first event to last
    visitors_capped: bool
    enough_data: bool = True  # 100 sessions, 5 with and 5 without each event at least


class StorefrontSegment(msgspec.Struct, frozen=True):
    """The sessions exposed to one campaign or list in one segment, by its arm."""

    segment: str
    personalised: StorefrontKpis | None  # null: no such session
    control: StorefrontKpis | None
    lifts: list[Lift]  # personalised - control: conversion, bounce, repeat, order value, time


class StorefrontArms(msgspec.Struct, frozen=True):
    name: str  # the campaign or recommended list
    segments: list[StorefrontSegment]  # "all" first


class OfferArm(msgspec.Struct, frozen=True):
    """One arm of an offer set in one segment: the offer id's arm name (``discount_10``,
    ``none``, ...), ``control`` (the holdout: no offer shown) or ``(no offer)`` (every arm
    removed by its guards or the budget). Purchases join as the learner joins them: the
    redeemed offer's (``offer_id``) with its discount cost, a shown-not-redeemed one's
    (``decision_id``) without."""

    arm: str
    decisions: int
    converted: int  # decisions with at least one purchase (or conversion)
    revenue: float  # before the discount
    discount: float  # the discount cost
    conversion_rate: Estimate  # converted / decisions, Wilson
    revenue_per_decision: Estimate  # normal
    net_per_decision: Estimate  # (revenue - discount cost) per decision, normal
    average_discount: Estimate  # discount cost per converted decision, normal
    enough_data: bool
    # against the control arm of the same segment (null for the control arm itself)
    conversion_lift: Estimate | None = None  # absolute, Newcombe
    net_lift: Estimate | None = None  # absolute, Welch
    verdict: Literal["better", "worse", "no_difference", "not_enough_data", "control"] = (
        "control"  # on net per decision
    )


class OfferSegment(msgspec.Struct, frozen=True):
    segment: str
    arms: list[OfferArm]  # control first, then by decisions


class OfferSet(msgspec.Struct, frozen=True):
    name: str  # the offer set (its decisions' campaign is ``offers.NAME``)
    segments: list[OfferSegment]  # "all" first


class TriggerArm(msgspec.Struct, frozen=True):
    decisions: int
    converted: int
    conversion_rate: Estimate  # Wilson


class TriggerResult(msgspec.Struct, frozen=True):
    """A trigger's decisions: shown the campaign (triggered) against its own holdout."""

    name: str
    triggered: TriggerArm
    holdout: TriggerArm
    absolute: Estimate  # triggered - holdout conversion rate, Newcombe
    relative: Estimate  # ratio - 1, Katz log interval
    enough_data: bool
    verdict: Literal["better", "worse", "no_difference", "not_enough_data"]


class RecsPosition(msgspec.Struct, frozen=True):
    position: int  # from 1; 0: an event without a position
    impressions: int
    clicks: int
    ctr: Estimate  # clicks / impressions, Wilson


class RecsArm(msgspec.Struct, frozen=True):
    """One arm of a recommended list in one segment."""

    decisions: int
    impressions: int
    clicks: int
    ctr: Estimate  # clicks / impressions, Wilson
    converted: int  # decisions with a purchase (or conversion) joined
    conversion_rate: Estimate  # converted / decisions, Wilson
    carts: int
    purchases: int
    revenue: float
    enough_data: bool  # of the CTR
    positions: list[RecsPosition]


class RecsSegment(msgspec.Struct, frozen=True):
    segment: str
    personalised: RecsArm
    control: RecsArm | None  # null: the list has no control decisions (no holdout)
    lifts: list[Lift]  # ctr and conversion_rate, personalised - control; [] without control


class RecsList(msgspec.Struct, frozen=True):
    """A recommendation or re-rank: both arms' figures, then by segment and arm."""

    name: str
    decisions: int
    strategies: dict[str, int]
    impressions: int
    clicks: int
    ctr: Estimate  # clicks / impressions, Wilson
    carts: int
    purchases: int
    revenue: float
    enough_data: bool
    positions: list[RecsPosition]
    segments: list[RecsSegment] = []  # "all" first


class Totals(msgspec.Struct, frozen=True):
    decisions: int
    duplicate_decisions: int
    events: int
    matched_events: int
    unmatched_events: int  # events whose decision is not in the report's range
    late_events: int  # after their decision's window
    ignored_events: int  # types the campaign sections do not read (page views, ...)
    unreadable: int
    outside: int  # decisions outside --since/--until or --campaign
    open_peak: int  # the most decisions held at once (the memory bound)


class Report(msgspec.Struct, frozen=True):
    schema: str
    generated_at: float
    source: str
    since: float | None
    until: float | None
    segment_by: list[str]
    window: float
    totals: Totals
    campaigns: list[Campaign]
    offers: Section
    triggers: Section
    storefront: Section
    storefront_kpis: StorefrontKpis | None = None
    storefront_by_arm: list[StorefrontArms] = []
    offer_sets: list[OfferSet] = []
    trigger_results: list[TriggerResult] = []
    recommendations: list[RecsList] = []


def _arm(t: ArmTally) -> Arm:
    return Arm(
        decisions=t.decisions,
        impressions=t.impressed,
        clicked=t.clicked,
        clicks=t.clicks,
        converted=t.converted,
        conversions=t.conversions,
        revenue=t.revenue,
        discount=t.discount,
        click_rate=Estimate.of(stats.wilson(t.clicked, t.decisions)),
        conversion_rate=Estimate.of(stats.wilson(t.converted, t.decisions)),
        goal_per_decision=Estimate.of(stats.mean(_goal(t))),
        revenue_per_decision=Estimate.of(
            stats.mean(stats.Moments(t.decisions, t.revenue, t.revenue_squares))
        ),
    )


def _goal(t: ArmTally) -> stats.Moments:
    return stats.Moments(t.decisions, t.goal, t.goal_squares)


def _verdict(enough: bool, absolute: stats.Interval) -> str:
    if not enough or absolute.low is None or absolute.high is None:
        return "not_enough_data"
    if absolute.low > 0:
        return "better"
    if absolute.high < 0:
        return "worse"
    return "no_difference"


def lifts(p: ArmTally, c: ArmTally) -> list[Lift]:
    """Personalised against control: click rate, conversion rate, goal per decision."""
    out = []
    for metric, x1, x2 in (
        ("click_rate", p.clicked, c.clicked),
        ("conversion_rate", p.converted, c.converted),
    ):
        absolute = stats.rate_difference(x1, p.decisions, x2, c.decisions)
        relative = stats.rate_ratio_lift(x1, p.decisions, x2, c.decisions)
        enough = stats.enough_rate(x1, p.decisions) and stats.enough_rate(x2, c.decisions)
        out.append(
            Lift(
                metric,  # type: ignore[arg-type]
                Estimate.of(absolute),
                Estimate.of(relative),
                enough,
                _verdict(enough, absolute),  # type: ignore[arg-type]
            )
        )
    absolute = stats.mean_difference(_goal(p), _goal(c))
    relative = stats.mean_ratio_lift(_goal(p), _goal(c))
    enough = stats.enough_mean(p.goal_nonzero, p.decisions) and stats.enough_mean(
        c.goal_nonzero, c.decisions
    )
    verdict = _verdict(enough, absolute)
    out.append(
        Lift("goal_per_decision", Estimate.of(absolute), Estimate.of(relative), enough, verdict)  # type: ignore[arg-type]
    )
    return out


def _performance(segment: str, name: str, t: ArmTally, base: int) -> Performance:
    return Performance(
        segment=segment,
        name=name,
        decisions=t.decisions,
        share=t.decisions / base if base else 0.0,
        click_rate=Estimate.of(stats.wilson(t.clicked, t.decisions)),
        goal_per_decision=Estimate.of(stats.mean(_goal(t))),
        enough_data=stats.enough_rate(t.clicked, t.decisions),
    )


def _segment_order(tally: CampaignTally) -> list[str]:
    """ "all" first, then the segments by their decisions, most first."""
    sizes: dict[str, int] = {}
    for (segment, _), arm in tally.arms.items():
        sizes[segment] = sizes.get(segment, 0) + arm.decisions
    rest = sorted((s for s in sizes if s != ALL), key=lambda s: (-sizes[s], s))
    return [ALL, *rest]


def campaign(tally: CampaignTally, bucket: float) -> Campaign:
    empty = ArmTally()
    segments = []
    for name in _segment_order(tally):
        p = tally.arms.get((name, PERSONALISED), empty)
        c = tally.arms.get((name, CONTROL), empty)
        segments.append(Segment(name, _arm(p), _arm(c), lifts(p, c)))
    p_all = tally.arms.get((ALL, PERSONALISED), empty)
    c_all = tally.arms.get((ALL, CONTROL), empty)
    total = p_all.decisions + c_all.decisions
    srm = stats.sample_ratio(
        c_all.decisions, total, p_all.expected_control + c_all.expected_control
    )
    order = {name: i for i, name in enumerate(_segment_order(tally))}
    base = {name: tally.arms.get((name, PERSONALISED), empty).decisions for name in order}
    variants = [
        _performance(seg, f"{slot}={variant}", t, base.get(seg, 0))
        for (seg, slot, variant), t in tally.variants.items()
    ]
    variants.sort(key=lambda r: (order.get(r.segment, 1 << 30), r.name))
    combinations = [
        _performance(seg, label, t, base.get(seg, 0))
        for (seg, label), t in tally.combinations.items()
    ]
    combinations.sort(key=lambda r: (order.get(r.segment, 1 << 30), -r.decisions, r.name))
    return Campaign(
        name=tally.name,
        goal=str(tally.goal),
        first=tally.first if math.isfinite(tally.first) else None,
        last=tally.last if math.isfinite(tally.last) else None,
        decisions=total,
        fail_open=tally.fail_open,
        reverted=tally.reverted,
        unserved=tally.unserved,
        sample_ratio=_sample_ratio(srm),
        segments=segments,
        variants=variants,
        combinations=combinations,
        timeline=timeline(tally, bucket),
    )


def _sample_ratio(srm: stats.Srm | None) -> SampleRatio | None:
    if srm is None:
        return None
    return SampleRatio(
        srm.expected_control_share, srm.observed_control_share, srm.chi2, srm.p_value, srm.mismatch
    )


def timeline(tally: CampaignTally, bucket: float) -> list[Point]:
    """At most MAX_POINTS equal intervals from the first decision to the last."""
    if not tally.timeline:
        return []
    first = min(b for b, _ in tally.timeline)
    last = max(b for b, _ in tally.timeline)
    width = max(1, math.ceil((last - first + 1) / MAX_POINTS))
    merged: dict[tuple[int, str], ArmTally] = {}
    for (b, arm), t in tally.timeline.items():
        key = ((b - first) // width, arm)
        into = merged.get(key)
        if into is None:
            into = merged[key] = ArmTally()
        merge(into, t)
    points = []
    empty = ArmTally()
    for index in range((last - first) // width + 1):
        p = merged.get((index, PERSONALISED), empty)
        c = merged.get((index, CONTROL), empty)
        start = (first + index * width) * bucket
        points.append(
            Point(
                start=start,
                end=start + width * bucket,
                personalised_decisions=p.decisions,
                control_decisions=c.decisions,
                personalised_click_rate=Estimate.of(stats.wilson(p.clicked, p.decisions)),
                control_click_rate=Estimate.of(stats.wilson(c.clicked, c.decisions)),
                personalised_goal=Estimate.of(stats.mean(_goal(p))),
                control_goal=Estimate.of(stats.mean(_goal(c))),
                click_rate_lift=Estimate.of(
                    stats.rate_difference(p.clicked, p.decisions, c.clicked, c.decisions)
                ),
                enough_data=stats.enough_rate(p.clicked, p.decisions)
                and stats.enough_rate(c.clicked, c.decisions),
            )
        )
    return points


NO_DATA = {
    "offers": "no offer set decisions (campaign offers.NAME) in this selection",
    "triggers": "no triggered-campaign decisions (records naming a trigger) in this selection",
    "storefront": "no visitor events in the log",
}


def build(
    tally: ReportTally,
    *,
    source: str,
    since: float | None = None,
    until: float | None = None,
    now: float | None = None,
    campaigns: dict[str, CampaignTally] | None = None,
    sections: Sections | None = None,
    sessions: SessionCounts | None = None,
    recommendations: Sequence[ListLike] | None = None,
) -> Report:
    """The report of what ``tally`` counted (or of ``campaigns``, ``sections`` and
    ``sessions``: a rolling tally's views); ``recommendations``: lists as ``slotwise recs
    report`` reads them, instead of the tally's own (tests compare the two)."""
    s = tally.stats
    chosen = tally.campaigns if campaigns is None else campaigns
    if sections is None:
        sections = (tally.offers, tally.triggers, tally.lists)
    offer_cells, trigger_cells, list_cells = sections
    sets = offer_sets(offer_cells)
    triggers = trigger_results(trigger_cells)
    if sessions is None:
        sessions = tally.storefront
    if recommendations is not None:
        recs = [recs_list(k) for k in recommendations]
    else:
        recs = lists_of(list_cells)
    return Report(
        schema=SCHEMA,
        generated_at=time.time() if now is None else now,
        source=source,
        since=since,
        until=until,
        segment_by=list(tally.segment_by),
        window=tally.window,
        totals=Totals(
            decisions=s.decisions,
            duplicate_decisions=s.duplicate_decisions,
            events=s.events,
            matched_events=s.matched_events,
            unmatched_events=s.unmatched_events,
            late_events=s.late_events,
            ignored_events=s.ignored_events,
            unreadable=s.unreadable,
            outside=s.outside,
            open_peak=s.open_peak,
        ),
        campaigns=[campaign(t, tally.bucket) for _, t in sorted(chosen.items())],
        offers=_section(sets, "offers"),
        triggers=_section(triggers, "triggers"),
        storefront=_storefront_section(sessions, recs),
        storefront_kpis=storefront_kpis(sessions),
        storefront_by_arm=storefront_by_arm(sessions),
        offer_sets=sets,
        trigger_results=triggers,
        recommendations=recs,
    )


def _section(rows: Sequence[object], name: str) -> Section:
    if not rows:
        return Section("no_data", NO_DATA[name])
    if name == "offers":
        return Section("ok", "per offer set, each arm against the control (holdout) by segment")
    return Section("ok", "per trigger, its decisions against its own holdout")


def _storefront_section(sessions: SessionCounts | None, recs: list[RecsList]) -> Section:
    parts = []
    if sessions is None:
        parts.append("exported logs hold no page views: sessions are read from the store")
    elif sessions.sessions == 0:
        parts.append(NO_DATA["storefront"])
    else:
        parts.append(
            "sessions, bounce rate, conversion, order value and repeat sessions from the"
            " visitors' events"
        )
    if not recs:
        parts.append("no recommendation or re-rank decisions in this selection")
    else:
        parts.append("impressions, clicks and CTR of each recommended list and position")
    ok = (sessions is not None and sessions.sessions > 0) or bool(recs)
    return Section("ok" if ok else "no_data", "; ".join(parts))


def _verdict_of(
    enough: bool, absolute: stats.Interval
) -> Literal["better", "worse", "no_difference", "not_enough_data"]:
    return _verdict(enough, absolute)  # type: ignore[return-value]


def _offer_arm(name: str, t: ArmTally, control: ArmTally | None) -> OfferArm:
    net = stats.Moments(t.decisions, t.revenue - t.discount, t.net_squares)
    enough = stats.enough_rate(t.converted, t.decisions)
    arm = OfferArm(
        arm=name,
        decisions=t.decisions,
        converted=t.converted,
        revenue=t.revenue,
        discount=t.discount,
        conversion_rate=Estimate.of(stats.wilson(t.converted, t.decisions)),
        revenue_per_decision=Estimate.of(
            stats.mean(stats.Moments(t.decisions, t.revenue, t.revenue_squares))
        ),
        net_per_decision=Estimate.of(stats.mean(net)),
        average_discount=Estimate.of(
            stats.mean(stats.Moments(t.converted, t.discount, t.discount_squares))
        ),
        enough_data=enough,
    )
    if control is None:
        return arm
    c_net = stats.Moments(
        control.decisions, control.revenue - control.discount, control.net_squares
    )
    net_lift = stats.mean_difference(net, c_net)
    both = enough and stats.enough_rate(control.converted, control.decisions)
    return msgspec.structs.replace(
        arm,
        conversion_lift=Estimate.of(
            stats.rate_difference(t.converted, t.decisions, control.converted, control.decisions)
        ),
        net_lift=Estimate.of(net_lift),
        verdict=_verdict_of(both, net_lift),
    )


def offer_sets(cells: dict[tuple[str, str, str], ArmTally]) -> list[OfferSet]:
    """Per offer set and segment ("all" first, then by decisions), control first."""
    grouped: dict[str, dict[str, dict[str, ArmTally]]] = {}
    for (name, segment, arm), t in cells.items():
        grouped.setdefault(name, {}).setdefault(segment, {})[arm] = t
    out = []
    for name in sorted(grouped):
        segments = grouped[name]
        size = {seg: sum(t.decisions for t in arms.values()) for seg, arms in segments.items()}
        order = sorted(segments, key=lambda seg: (seg != ALL, -size[seg], seg))
        rows = []
        for seg in order:
            arms = segments[seg]
            control = arms.get(CONTROL)
            shown = sorted((a for a in arms if a != CONTROL), key=lambda a: (-arms[a].decisions, a))
            row = [_offer_arm(CONTROL, control, None)] if control is not None else []
            row += [_offer_arm(a, arms[a], control) for a in shown]
            rows.append(OfferSegment(seg, row))
        out.append(OfferSet(name, rows))
    return out


def _trigger_arm(t: ArmTally) -> TriggerArm:
    return TriggerArm(t.decisions, t.converted, Estimate.of(stats.wilson(t.converted, t.decisions)))


def trigger_results(cells: dict[tuple[str, str], ArmTally]) -> list[TriggerResult]:
    """Per trigger: the triggered decisions' conversion rate against its holdout's."""
    empty = ArmTally()
    out = []
    for name in sorted({trigger for trigger, _ in cells}):
        p = cells.get((name, TRIGGERED), empty)
        c = cells.get((name, CONTROL), empty)
        absolute = stats.rate_difference(p.converted, p.decisions, c.converted, c.decisions)
        enough = stats.enough_rate(p.converted, p.decisions) and stats.enough_rate(
            c.converted, c.decisions
        )
        out.append(
            TriggerResult(
                name=name,
                triggered=_trigger_arm(p),
                holdout=_trigger_arm(c),
                absolute=Estimate.of(absolute),
                relative=Estimate.of(
                    stats.rate_ratio_lift(p.converted, p.decisions, c.converted, c.decisions)
                ),
                enough_data=enough,
                verdict=_verdict_of(enough, absolute),
            )
        )
    return out


class ListLike(Protocol):
    """A list's KPIs as ``slotwise recs report`` reads them (slotwise.lab.recs_report)."""

    name: str
    decisions: int
    strategies: dict[str, int]
    impressions: int
    clicks: int
    carts: int
    purchases: int
    revenue: float
    positions: dict[int, list[int]]


def _ctr(clicks: int, impressions: int) -> Estimate:
    # a click whose impression pixel was lost (blocked images) can make clicks > impressions:
    # the rate's interval is of the clicks the impressions allow
    return Estimate.of(stats.wilson(min(clicks, impressions), impressions))


def recs_list(k: ListLike) -> RecsList:
    return RecsList(
        name=k.name,
        decisions=k.decisions,
        strategies=dict(k.strategies),
        impressions=k.impressions,
        clicks=k.clicks,
        ctr=_ctr(k.clicks, k.impressions),
        carts=k.carts,
        purchases=k.purchases,
        revenue=k.revenue,
        enough_data=stats.enough_rate(min(k.clicks, k.impressions), k.impressions),
        positions=_positions(k.positions),
    )


def _list_arm(t: ListTally) -> RecsArm:
    return RecsArm(
        decisions=t.decisions,
        impressions=t.impressions,
        clicks=t.clicks,
        ctr=_ctr(t.clicks, t.impressions),
        converted=t.converted,
        conversion_rate=Estimate.of(stats.wilson(t.converted, t.decisions)),
        carts=t.carts,
        purchases=t.purchases,
        revenue=t.revenue,
        enough_data=stats.enough_rate(min(t.clicks, t.impressions), t.impressions),
        positions=_positions(t.positions),
    )


def _positions(positions: dict[int, list[int]]) -> list[RecsPosition]:
    """Impressions, clicks and CTR by position, first position first."""
    return [
        RecsPosition(p, shown, clicked, _ctr(clicked, shown))
        for p, (shown, clicked) in sorted(positions.items())
    ]


def _rate_lift(metric: str, x1: int, n1: int, x2: int, n2: int) -> Lift:
    absolute = stats.rate_difference(x1, n1, x2, n2)
    enough = stats.enough_rate(x1, n1) and stats.enough_rate(x2, n2)
    return Lift(
        metric,  # type: ignore[arg-type]
        Estimate.of(absolute),
        Estimate.of(stats.rate_ratio_lift(x1, n1, x2, n2)),
        enough,
        _verdict_of(enough, absolute),
    )


def _mean_lift(metric: str, a: stats.Moments, a_nonzero: int, b: stats.Moments,
               b_nonzero: int) -> Lift:  # fmt: skip
    absolute = stats.mean_difference(a, b)
    enough = stats.enough_mean(a_nonzero, a.n) and stats.enough_mean(b_nonzero, b.n)
    return Lift(
        metric,  # type: ignore[arg-type]
        Estimate.of(absolute),
        Estimate.of(stats.mean_ratio_lift(a, b)),
        enough,
        _verdict_of(enough, absolute),
    )


def lists_of(cells: ListCells) -> list[RecsList]:
    """Per recommended list: both arms together (all traffic), then per segment ("all"
    first, then by decisions) personalised against control on the CTR (clicks over
    impressions; the interval is of at most as many clicks as impressions) and the
    conversion rate of decisions."""
    grouped: dict[str, dict[str, dict[str, ListTally]]] = {}
    for (name, segment, arm), t in cells.items():
        grouped.setdefault(name, {}).setdefault(segment, {})[arm] = t
    out = []
    for name in sorted(grouped):
        segments = grouped[name]
        total = ListTally()
        for t in segments.get(ALL, {}).values():
            total.merge(t)
        size = {seg: sum(t.decisions for t in arms.values()) for seg, arms in segments.items()}
        rows = []
        for seg in sorted(segments, key=lambda seg: (seg != ALL, -size[seg], seg)):
            arms = segments[seg]
            p = arms.get(PERSONALISED, ListTally())
            c = arms.get(CONTROL)
            lifts = []
            if c is not None:
                lifts = [
                    _rate_lift("ctr", min(p.clicks, p.impressions), p.impressions,
                               min(c.clicks, c.impressions), c.impressions),
                    _rate_lift("conversion_rate", p.converted, p.decisions, c.converted,
                               c.decisions),
                ]  # fmt: skip
            rows.append(
                RecsSegment(seg, _list_arm(p), _list_arm(c) if c is not None else None, lifts)
            )
        whole = _list_arm(total)
        out.append(
            RecsList(
                name=name,
                decisions=total.decisions,
                strategies=dict(sorted(total.strategies.items())),
                impressions=total.impressions,
                clicks=total.clicks,
                ctr=whole.ctr,
                carts=total.carts,
                purchases=total.purchases,
                revenue=total.revenue,
                enough_data=whole.enough_data,
                positions=whole.positions,
                segments=rows,
            )
        )
    return out


def storefront_by_arm(t: SessionCounts | None) -> list[StorefrontArms]:
    """Per campaign or list the sessions were exposed to, per segment ("all" first, then by
    sessions): each arm's storefront KPIs and personalised against control."""
    if t is None or not t.arms:
        return []
    grouped: dict[str, dict[str, dict[str, SessionCounts]]] = {}
    for (name, segment, arm), counts in t.arms.items():
        grouped.setdefault(name, {}).setdefault(segment, {})[arm] = counts
    out = []
    for name in sorted(grouped):
        segments = grouped[name]
        size = {seg: sum(c.sessions for c in arms.values()) for seg, arms in segments.items()}
        rows = []
        for seg in sorted(segments, key=lambda seg: (seg != ALL, -size[seg], seg)):
            arms = segments[seg]
            p, c = arms.get(PERSONALISED), arms.get(CONTROL)
            lifts = []
            if p is not None and c is not None:
                lifts = [
                    _rate_lift("conversion_rate", p.converted, p.sessions, c.converted,
                               c.sessions),
                    _rate_lift("bounce_rate", p.bounced, p.sessions, c.bounced, c.sessions),
                    _rate_lift("repeat_sessions", p.repeat, p.sessions, c.repeat, c.sessions),
                    _mean_lift("average_order_value", _order_moments(p), p.orders,
                               _order_moments(c), c.orders),
                    _mean_lift("session_seconds", _seconds_moments(p), p.sessions,
                               _seconds_moments(c), c.sessions),
                ]  # fmt: skip
            rows.append(StorefrontSegment(seg, storefront_kpis(p), storefront_kpis(c), lifts))
        out.append(StorefrontArms(name, rows))
    return out


def _order_moments(t: SessionCounts) -> stats.Moments:
    return stats.Moments(t.orders, t.revenue, t.revenue_squares)


def _seconds_moments(t: SessionCounts) -> stats.Moments:
    return stats.Moments(t.sessions, t.seconds, t.seconds_squares)


def storefront_kpis(t: SessionCounts | None) -> StorefrontKpis | None:
    if t is None or t.sessions == 0:
        return None
    enough = stats.enough_rate(t.converted, t.sessions) and stats.enough_rate(t.bounced, t.sessions)
    return StorefrontKpis(
        timeout=t.timeout,
        sessions=t.sessions,
        repeat_sessions=Estimate.of(stats.wilson(t.repeat, t.sessions)),
        bounce_rate=Estimate.of(stats.wilson(t.bounced, t.sessions)),
        conversion_rate=Estimate.of(stats.wilson(t.converted, t.sessions)),
        orders=t.orders,
        revenue=t.revenue,
        average_order_value=Estimate.of(
            stats.mean(stats.Moments(t.orders, t.revenue, t.revenue_squares))
        ),
        session_seconds=Estimate.of(
            stats.mean(stats.Moments(t.sessions, t.seconds, t.seconds_squares))
        ),
        visitors_capped=t.visitors_capped,
        enough_data=enough,
    )


def schema() -> dict[str, object]:
    """The report's JSON Schema."""
    return msgspec.json.schema(Report)
