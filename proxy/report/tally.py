"""The report's streaming join and counts: decisions and their events in, tallies out.

Decisions and events arrive in (roughly) time order. A decision stays open for ``window``
seconds (its join window, as the learner's: slotwise.proxy.learn.join) and collects the events
carrying its id; when the stream has moved past its window it is closed and added to the
counts, and forgotten. An event for an id not seen yet waits one window for its decision (the
logs of several proxies interleave), then is counted as unmatched. So memory holds the
decisions of one window and the counts, whatever the log's length: a report over a day of
traffic with a one-hour window holds about a twenty-fourth of it.

A decision is counted in the arm it was assigned (intention to treat): ``control`` when held
out, else ``personalised``, a fail-open personalised decision included (its figures are what
assigning personalisation did). Decisions served generic because a guardrail reverted the
campaign (``fail_open == "guardrail"``) are in neither arm (there was no randomisation); nor
are unserved ones (the chooser failed: no choice, no slots, no holdout).

The same closed decisions also feed the offers section (an offer set's decisions, campaign
``offers.NAME``: by segment and the arm of the offer id written, or ``control``), the
triggers section (decisions naming a trigger: ``triggered`` or its holdout, ``control``) and
the recommended lists section (decisions of a recommendation or re-rank, whose record says
``signals["recs.strategy"]``: by segment and arm, their impressions and clicks per position,
add-to-carts and purchases).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slotwise.proxy.decision_log import DecisionRecord
from slotwise.proxy.offers_config import OffersConfig
from slotwise.proxy.report.storefront import SessionTally
from slotwise.types import DEFAULT_GOAL, GOAL_METRICS, Goal

PERSONALISED = "personalised"
CONTROL = "control"
ALL = "all"
OTHER = "(other)"
NONE_VALUE = "(none)"
GUARDRAIL = "guardrail"  # the fail_open cause of a decision served generic by a guardrail
MAX_SEGMENTS = 100  # per campaign; further segment values are counted as "(other)"
MAX_COMBINATIONS = 500  # per campaign and segment; further ones as "(other)=(other)"
OFFERS_PREFIX = "offers."  # an offer set's decision records (slotwise.proxy.offer_set)
NO_OFFER = "(no offer)"
TRIGGERED = "triggered"
RECS_STRATEGY = "recs.strategy"  # the signal a recommendation's decision record carries
BUCKET = 60.0  # the timeline's resolution in seconds, coarsened when the report is built


@dataclass(slots=True)
class ArmTally:
    """The counts of one arm of one segment: decisions and what came back for them."""

    decisions: int = 0
    impressed: int = 0  # decisions with at least one impression event
    clicked: int = 0  # ... with at least one click
    clicks: int = 0
    converted: int = 0
    conversions: int = 0
    revenue: float = 0.0
    revenue_squares: float = 0.0
    discount: float = 0.0
    discount_squares: float = 0.0
    net_squares: float = 0.0  # of revenue - discount per decision (the offers section)
    goal: float = 0.0
    goal_squares: float = 0.0
    goal_nonzero: int = 0
    expected_control: float = 0.0  # the sum of holdout shares (for the split test)

    def add(self, d: _Open, value: float) -> None:
        self.decisions += 1
        self.impressed += d.impressions > 0
        self.clicked += d.clicks > 0
        self.clicks += d.clicks
        self.converted += d.conversions > 0
        self.conversions += d.conversions
        self.revenue += d.revenue
        self.revenue_squares += d.revenue * d.revenue
        self.discount += d.discount
        self.discount_squares += d.discount * d.discount
        net = d.revenue - d.discount
        self.net_squares += net * net
        self.goal += value
        self.goal_squares += value * value
        self.goal_nonzero += value != 0.0
        self.expected_control += d.holdout_share


Combination = tuple[tuple[str, str], ...]  # ((slot, variant), ...) as served
_OTHER_COMBINATION: Combination = ((OTHER, OTHER),)


@dataclass(slots=True)
class ListTally:
    """One recommended list's counts in one segment and arm: its decisions, their impressions
    and clicks (per position too), add-to-carts and purchases."""

    decisions: int = 0
    impressions: int = 0
    clicks: int = 0
    carts: int = 0
    converted: int = 0  # decisions with at least one purchase (or conversion)
    purchases: int = 0
    revenue: float = 0.0
    strategies: dict[str, int] = field(default_factory=dict)
    positions: dict[int, list[int]] = field(default_factory=dict)  # position -> [shown, clicked]

    def add(self, d: _Open) -> None:
        self.decisions += 1
        self.impressions += d.impressions
        self.clicks += d.clicks
        self.carts += d.carts
        self.converted += d.conversions > 0
        self.purchases += d.conversions
        self.revenue += d.revenue
        strategy = d.strategy or ""
        self.strategies[strategy] = self.strategies.get(strategy, 0) + 1
        if d.positions:
            self._add_positions(d.positions)

    def merge(self, t: ListTally) -> None:
        for name in ("decisions", "impressions", "clicks", "carts", "converted", "purchases",
                     "revenue"):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(t, name))
        for strategy, count in t.strategies.items():
            self.strategies[strategy] = self.strategies.get(strategy, 0) + count
        self._add_positions(t.positions)

    def _add_positions(self, positions: Mapping[int, Sequence[int]]) -> None:
        for position, (shown, clicked) in positions.items():
            cell = self.positions.get(position)
            if cell is None:
                self.positions[position] = [shown, clicked]
            else:
                cell[0] += shown
                cell[1] += clicked


@dataclass(slots=True)
class CampaignTally:
    """One campaign's counts. While streaming, each decision is added twice: to its cell
    (segment, arm, combination) and to its timeline bucket; ``derive`` then sums the cells
    into the views the report shows (arms per segment and overall, variants, combinations)."""

    name: str
    goal: Goal
    cells: dict[tuple[str, str, Combination], ArmTally] = field(default_factory=dict)
    timeline: dict[tuple[int, str], ArmTally] = field(default_factory=dict)  # (bucket, arm)
    segments: dict[str, None] = field(default_factory=dict)
    combos_per_segment: dict[str, set[Combination]] = field(default_factory=dict)
    fail_open: int = 0  # personalised decisions served unchanged (in the personalised arm)
    reverted: int = 0  # served generic by a guardrail (in no arm)
    unserved: int = 0
    first: float = float("inf")
    last: float = float("-inf")
    weights: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # the goal's, in order
    # derived by ``derive``: (segment, arm); (segment, slot, variant); (segment, label)
    arms: dict[tuple[str, str], ArmTally] = field(default_factory=dict)
    variants: dict[tuple[str, str, str], ArmTally] = field(default_factory=dict)
    combinations: dict[tuple[str, str], ArmTally] = field(default_factory=dict)

    def __post_init__(self) -> None:
        w = self.goal.weights
        self.weights = tuple(w.get(m, 0.0) for m in GOAL_METRICS)  # type: ignore[assignment]

    def segment(self, value: str) -> str:
        if value in self.segments or len(self.segments) < MAX_SEGMENTS:
            self.segments[value] = None
            return value
        return OTHER

    def combination(self, segment: str, slots: Combination) -> Combination:
        seen = self.combos_per_segment.setdefault(segment, set())
        if slots in seen or len(seen) < MAX_COMBINATIONS:
            seen.add(slots)
            return slots
        return _OTHER_COMBINATION

    def derive(self, segmented: bool) -> None:
        """Sum the cells into the arms, variants and combinations of each segment and of all
        traffic (``ALL``)."""
        self.arms.clear()
        self.variants.clear()
        self.combinations.clear()
        for (segment, arm, slots), t in self.cells.items():
            targets = (ALL, segment) if segmented else (ALL,)
            for seg in targets:
                _into(self.arms, (seg, arm), t)
                if arm != PERSONALISED or not slots:
                    continue
                for slot, variant in slots:
                    _into(self.variants, (seg, slot, variant), t)
                label = ", ".join(f"{slot}={variant}" for slot, variant in slots)
                _into(self.combinations, (seg, label), t)


def _add(table: dict[Any, ArmTally], key: Any, d: _Open, value: float) -> None:
    cell = table.get(key)
    if cell is None:
        cell = table[key] = ArmTally()
    cell.add(d, value)


def _into(table: dict[Any, ArmTally], key: Any, t: ArmTally) -> None:
    into = table.get(key)
    if into is None:
        into = table[key] = ArmTally()
    merge(into, t)


def merge(into: ArmTally, t: ArmTally) -> None:
    """Add ``t``'s counts and sums to ``into``."""
    into.decisions += t.decisions
    into.impressed += t.impressed
    into.clicked += t.clicked
    into.clicks += t.clicks
    into.converted += t.converted
    into.conversions += t.conversions
    into.revenue += t.revenue
    into.revenue_squares += t.revenue_squares
    into.discount += t.discount
    into.discount_squares += t.discount_squares
    into.net_squares += t.net_squares
    into.goal += t.goal
    into.goal_squares += t.goal_squares
    into.goal_nonzero += t.goal_nonzero
    into.expected_control += t.expected_control


class _Open:
    """One decision inside its join window: what the report keeps of it, and its events."""

    __slots__ = (
        "campaign", "ts", "arm", "segment", "slots", "holdout_share", "reverted",
        "impressions", "clicks", "conversions", "revenue", "discount", "fail_open",
        "offer_set", "offer_arm", "trigger", "strategy", "positions", "carts",
    )  # fmt: skip

    def __init__(self, record: DecisionRecord, segment: str, arm: str) -> None:
        self.campaign = record.campaign
        self.ts = record.ts
        self.arm = arm
        self.segment = segment
        self.slots = tuple([(s.slot, s.variant or "-") for s in record.slots])
        self.holdout_share = record.holdout_share
        self.fail_open = record.fail_open is not None
        self.reverted = record.fail_open == GUARDRAIL
        self.impressions = 0
        self.clicks = 0
        self.conversions = 0
        self.revenue = 0.0
        self.discount = 0.0
        # the offers and triggers sections: which offer set and arm, which trigger
        self.offer_set, self.offer_arm = _offer_of(record, arm)
        self.trigger = record.trigger
        # a recommended list's decision: its strategy, and its impressions and clicks by
        # position (position -> [impressions, clicks]), its add-to-carts
        strategy = record.signals.get(RECS_STRATEGY)
        self.strategy = strategy if isinstance(strategy, str) else None
        self.positions: dict[int, list[int]] | None = {} if self.strategy is not None else None
        self.carts = 0


def _offer_of(record: DecisionRecord, arm: str) -> tuple[str, str]:
    """(offer set, arm) of an offer set's decision: the arm of the offer id written
    (``<decision id>.<arm>``), ``control`` when held out; ("", "") otherwise."""
    if not record.campaign.startswith(OFFERS_PREFIX) or not arm:
        return "", ""
    name = record.campaign[len(OFFERS_PREFIX) :]
    if arm == CONTROL:
        return name, CONTROL
    if record.offer is None:
        return name, NO_OFFER  # every arm removed by its guards or the budget: none written
    _, dot, written = record.offer.partition(".")
    return name, written if dot and written else NO_OFFER


@dataclass(slots=True)
class StreamStats:
    decisions: int = 0
    duplicate_decisions: int = 0
    events: int = 0
    matched_events: int = 0
    unmatched_events: int = 0
    late_events: int = 0
    ignored_events: int = 0  # event types the campaign sections do not read
    unreadable: int = 0
    outside: int = 0  # decisions outside --since/--until or of other campaigns
    open_peak: int = 0  # the most decisions held at once (the memory bound)


OfferCells = dict[tuple[str, str, str], ArmTally]  # (offer set, segment, arm)
TriggerCells = dict[tuple[str, str], ArmTally]  # (trigger, arm)
ListCells = dict[tuple[str, str, str], ListTally]  # (list, segment, arm)
Sections = tuple[OfferCells, TriggerCells, ListCells]
_EVENTS = frozenset(
    {"impression", "click", "conversion", "revenue", "discount_cost", "purchase", "add_to_cart"}
)
NO_POSITION = -1  # an impression or click whose position was not read


class ReportTally:
    """Streams decisions and events in; ``campaigns`` holds the counts once ``finish``-ed."""

    def __init__(
        self,
        goals: Callable[[str], Goal] = lambda _: DEFAULT_GOAL,
        segment_by: Sequence[str] = (),
        window: float = 3600.0,
        bucket: float = BUCKET,
    ) -> None:
        self.goals = goals
        self.segment_by = tuple(segment_by)
        self.window = window
        self.bucket = bucket
        self.campaigns: dict[str, CampaignTally] = {}
        self.stats = StreamStats()
        # the storefront KPIs' sessions, when the source has the visitors' events (the store)
        self.storefront: SessionTally | None = None
        # the offers section: (offer set, segment, arm); the triggers section: (trigger, arm)
        self.offers: OfferCells = {}
        self.triggers: TriggerCells = {}
        self.lists: ListCells = {}  # the recommended lists section: (list, segment, arm)
        self.offers_config = OffersConfig()  # purchases' currencies ([offers] rates)
        # a recommendation's or re-rank's decision was read (whether to read list positions)
        self.lists_seen = False
        self._open: dict[str, _Open] = {}
        # (deadline, id) in arrival order: the logs are in time order up to the skew between
        # proxies, so a deadline queue needs no heap; one out of order closes a little late
        self._deadlines: deque[tuple[float, str]] = deque()
        self._orphans: dict[str, list[tuple[float, str, float, float, int]]] = {}
        self._closed: dict[str, None] = {}
        self._now = float("-inf")

    def add_decision(self, record: DecisionRecord) -> None:
        stats = self.stats
        if record.id in self._open or record.id in self._closed:
            stats.duplicate_decisions += 1
            return
        stats.decisions += 1
        if RECS_STRATEGY in record.signals:
            self.lists_seen = True
        arm = CONTROL if record.holdout else PERSONALISED
        if not record.holdout and not record.slots and not record.eligible:
            arm = ""  # unserved: no choice was made
        segment = self._segment_of(record) if self.segment_by else ALL
        entry = _Open(record, segment, arm)
        self._open[record.id] = entry
        self._deadlines.append((record.ts + self.window, record.id))
        if record.outcome is not None:  # a converted log's decision carries its outcome
            entry.clicks = round(record.outcome.clicks)
            entry.conversions = round(record.outcome.conversions)
            entry.revenue = record.outcome.revenue
            entry.discount = record.outcome.discount_cost
        for ts, kind, value, discount, position in self._orphans.pop(record.id, ()):
            self._apply(entry, ts, kind, value, discount, position)
        if len(self._open) > stats.open_peak:
            stats.open_peak = len(self._open)
        if record.ts > self._now:
            self._advance(record.ts)

    def _segment_of(self, record: DecisionRecord) -> str:
        values = []
        for name in self.segment_by:
            value = record.signals.get(name)
            if value is None:
                values.append(NONE_VALUE)
            elif isinstance(value, tuple):
                values.append(",".join(value) or NONE_VALUE)
            elif isinstance(value, bool):
                values.append("true" if value else "false")
            else:
                values.append(str(value))
        return " / ".join(values)

    def open_decision(self, decision_id: str) -> _Open | None:
        """The decision of this id while it is open (inside its join window)."""
        return self._open.get(decision_id)

    def add_event(
        self,
        decision_id: str,
        ts: float,
        kind: str,
        value: float = 0.0,
        discount: float = 0.0,
        position: int = NO_POSITION,
    ) -> None:
        """One event of a decision: impression, click (``position``: of a list's item),
        conversion (value: its revenue), revenue, discount_cost, purchase (a conversion whose
        value is the revenue and ``discount`` the discount cost: store_reader joins purchases
        as the learner does), or add_to_cart (read for recommended lists only)."""
        self.stats.events += 1
        if kind not in _EVENTS:
            self.stats.ignored_events += 1
            return
        entry = self._open.get(decision_id)
        if kind == "add_to_cart" and (entry is None or entry.strategy is None):
            self.stats.ignored_events += 1  # a campaign's: its views do not read them
            return
        if entry is not None:
            self._apply(entry, ts, kind, value, discount, position)
        elif decision_id in self._closed:
            self.stats.late_events += 1
        else:
            orphan = (ts, kind, value, discount, position)
            self._orphans.setdefault(decision_id, []).append(orphan)
            self._deadlines.append((ts + self.window, decision_id))
        if ts > self._now:
            self._advance(ts)

    def _apply(
        self,
        entry: _Open,
        ts: float,
        kind: str,
        value: float,
        discount: float = 0.0,
        position: int = NO_POSITION,
    ) -> None:
        if ts > entry.ts + self.window or ts < entry.ts - 1.0:  # a second of clock skew
            self.stats.late_events += 1
            return
        self.stats.matched_events += 1
        if kind == "impression" or kind == "click":
            click = kind == "click"
            if click:
                entry.clicks += 1
            else:
                entry.impressions += 1
            positions = entry.positions
            if positions is not None:  # a list's: by position (0: an event without one)
                cell = positions.get(max(position, 0))
                if cell is None:
                    cell = positions[max(position, 0)] = [0, 0]
                cell[click] += 1
        elif kind == "add_to_cart":
            entry.carts += 1
        elif kind == "conversion" or kind == "purchase":
            entry.conversions += 1
            entry.revenue += value
            entry.discount += discount
        elif kind == "revenue":
            entry.revenue += value
        else:
            entry.discount += value

    def _advance(self, ts: float) -> None:
        # the stream's time only moves forward; close what its window left behind
        self._now = ts
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] < ts:
            _, key = deadlines.popleft()
            entry = self._open.pop(key, None)
            if entry is not None:
                self._count(entry)
                self._remember(key)
            elif key in self._orphans and key not in self._open:
                self.stats.unmatched_events += len(self._orphans.pop(key))

    def advance(self, now: float) -> None:
        """Close what ``now`` (a wall clock, when the logs are quiet) left behind."""
        if now > self._now:
            self._advance(now)

    def _remember(self, key: str) -> None:
        closed = self._closed
        closed[key] = None
        if len(closed) > 200_000:  # bounded: forget the oldest half (later events: unmatched)
            for old in list(closed)[:100_000]:
                del closed[old]

    def finish(self) -> None:
        """The end of the stream: count every decision still open, derive the views."""
        for entry in self._open.values():
            self._count(entry)
        self._open.clear()
        self._deadlines.clear()
        self.stats.unmatched_events += sum(len(v) for v in self._orphans.values())
        self._orphans.clear()
        for tally in self.campaigns.values():
            tally.derive(bool(self.segment_by))
        if self.storefront is not None:
            self.storefront.finish()

    def _campaign_of(self, d: _Open) -> CampaignTally:
        tally = self.campaigns.get(d.campaign)
        if tally is None:
            tally = self.campaigns[d.campaign] = CampaignTally(d.campaign, self.goals(d.campaign))
        return tally

    def _count(self, d: _Open) -> None:
        tally = self._campaign_of(d)
        tally.first = min(tally.first, d.ts)
        tally.last = max(tally.last, d.ts)
        if d.reverted:
            tally.reverted += 1
            return
        if not d.arm:
            tally.unserved += 1
            return
        tally.fail_open += d.fail_open and d.arm == PERSONALISED
        w = tally.weights
        value = w[0] * d.clicks + w[1] * d.conversions + w[2] * d.revenue + w[3] * d.discount
        segment = tally.segment(d.segment) if self.segment_by else ALL
        slots = tally.combination(segment, d.slots) if d.slots else d.slots
        cell_key = (segment, d.arm, slots)
        cell = tally.cells.get(cell_key)
        if cell is None:
            cell = tally.cells[cell_key] = ArmTally()
        cell.add(d, value)
        bucket = (int(d.ts // self.bucket), d.arm)
        point = tally.timeline.get(bucket)
        if point is None:
            point = tally.timeline[bucket] = ArmTally()
        point.add(d, value)
        self._count_sections(d, segment, value)

    def _section_tables(self, d: _Open) -> Sections:
        return self.offers, self.triggers, self.lists

    def _count_sections(self, d: _Open, segment: str, value: float) -> None:
        if not d.offer_set and d.trigger is None and d.strategy is None:
            return
        offers, triggers, lists = self._section_tables(d)
        targets = (ALL, segment) if segment != ALL else (ALL,)
        if d.strategy is not None:
            for seg in targets:
                key = (d.campaign, seg, d.arm)
                cell = lists.get(key)
                if cell is None:
                    cell = lists[key] = ListTally()
                cell.add(d)
        if d.offer_set:
            for seg in targets:
                _add(offers, (d.offer_set, seg, d.offer_arm), d, value)
        if d.trigger is not None:
            arm = CONTROL if d.arm == CONTROL else TRIGGERED
            _add(triggers, (d.trigger, arm), d, value)


class RollingTally(ReportTally):
    """A ReportTally whose counts are kept per ``span`` of decision time, so that a view of a
    recent window sums the spans inside it and older spans are dropped (the dashboard); the
    offers' and triggers' counts too."""

    def __init__(self, *args: Any, span: float = 300.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.span = span
        self.spans: dict[int, dict[str, CampaignTally]] = {}
        self.span_sections: dict[int, Sections] = {}

    def _section_tables(self, d: _Open) -> Sections:
        key = int(d.ts // self.span)
        tables = self.span_sections.get(key)
        if tables is None:
            tables = self.span_sections[key] = ({}, {}, {})
        return tables

    def view_sections(self, since: float) -> Sections:
        """The offers', triggers' and lists' counts of the spans from ``since`` on, summed
        afresh."""
        first = int(since // self.span)
        for old in [key for key in self.span_sections if key < first]:
            del self.span_sections[old]
        offers: OfferCells = {}
        triggers: TriggerCells = {}
        lists: ListCells = {}
        for span_offers, span_triggers, span_lists in self.span_sections.values():
            for key, cell in span_offers.items():
                _into(offers, key, cell)
            for trigger_key, cell in span_triggers.items():
                _into(triggers, trigger_key, cell)
            for list_key, part in span_lists.items():
                into = lists.get(list_key)
                if into is None:
                    into = lists[list_key] = ListTally()
                into.merge(part)
        return offers, triggers, lists

    def _campaign_of(self, d: _Open) -> CampaignTally:
        campaigns = self.spans.setdefault(int(d.ts // self.span), {})
        tally = campaigns.get(d.campaign)
        if tally is None:
            tally = campaigns[d.campaign] = CampaignTally(d.campaign, self.goals(d.campaign))
        return tally

    def view(self, since: float) -> dict[str, CampaignTally]:
        """The campaigns' counts of the spans from ``since`` on (older spans are dropped),
        summed into fresh tallies with their views derived."""
        first = int(since // self.span)
        for old in [key for key in self.spans if key < first]:
            del self.spans[old]
        summed: dict[str, CampaignTally] = {}
        for key in sorted(self.spans):
            for name, part in self.spans[key].items():
                into = summed.get(name)
                if into is None:
                    into = summed[name] = CampaignTally(name, part.goal)
                _add_campaign(into, part)
        for tally in summed.values():
            tally.derive(bool(self.segment_by))
        return summed


def _add_campaign(into: CampaignTally, part: CampaignTally) -> None:
    for key, cell in part.cells.items():
        _into(into.cells, key, cell)
    for bucket, point in part.timeline.items():
        _into(into.timeline, bucket, point)
    for segment in part.segments:
        into.segments[segment] = None
    into.fail_open += part.fail_open
    into.reverted += part.reverted
    into.unserved += part.unserved
    into.first = min(into.first, part.first)
    into.last = max(into.last, part.last)
