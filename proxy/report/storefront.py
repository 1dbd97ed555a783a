"""Storefront KPIs from the events log: sessions, bounce rate, conversion, average order
value, session time and repeat sessions.

A **session** is one visitor's run of events (by ``user_id``, else ``anonymous_id``; events
with neither are not a visitor's) with no gap longer than ``TIMEOUT`` (30 minutes, the usual
web analytics definition): the first event after a longer gap starts a new session. A
session **bounces** when it holds a single page event (``page_view`` or ``product_view``)
and nothing else; it **converts** when it holds a ``purchase`` (an order: its
``properties.value`` is the order's value). Session time is from its first event to its last
(0 for a single event). A **repeat session** is any session of a visitor after their first
in the report's range.

**By arm**: a session is **exposed** to a campaign or recommended list when it holds an
impression of its visitor naming one of its decisions (``decision_id``) while that decision
is in its join window (an impression pixel that carries the visitor, ``aid``/``uid``). Only
impressions: a click or an order naming a decision would select sessions by their outcome
(every session exposed by an order converts). The session then also counts
under that campaign, the decision's arm (``personalised`` or ``control``: its holdout) and its
segment (and ``all``), the first such decision of the campaign in the session deciding. An
impression is not an interaction: it does not keep a session from bouncing.

Streaming like the campaign counts: a session stays open until the stream's time passes its
last event plus the timeout, so memory holds the visitors active in the last half hour, and
the visitors seen (for repeat sessions, up to ``MAX_VISITORS``; beyond it a visitor's later
sessions count as first ones and ``visitors_capped`` says so). A session's figures (its
orders included) are added to the counts when it closes.

``RollingSessions`` (the live dashboard) keeps the closed sessions' counts per ``span`` of
their start, so a view of a recent window sums the spans inside it plus the sessions still
open (as they stand); a repeat session there is a visitor's session after an earlier one
inside the dashboard's window (visitors idle longer than it are forgotten).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

TIMEOUT = 1800.0
MAX_VISITORS = 2_000_000
MAX_ARM_CELLS = 2000  # (campaign, segment, arm) cells; further segments count as "(other)"
PAGE_EVENTS = frozenset({"page_view", "product_view"})
ALL = "all"  # as slotwise.proxy.report.tally.ALL
OTHER = "(other)"


@dataclass(slots=True)
class _Session:
    start: float
    last: float
    repeat: bool = False
    pages: int = 0
    others: int = 0
    orders: int = 0
    revenue: float = 0.0
    revenue_squares: float = 0.0  # per order
    exposures: dict[str, tuple[str, str]] | None = None  # campaign -> (segment, arm)


ArmKey = tuple[str, str, str]  # (campaign, segment, arm)


@dataclass(slots=True)
class SessionCounts:
    timeout: float = TIMEOUT
    sessions: int = 0
    bounced: int = 0
    converted: int = 0
    repeat: int = 0
    orders: int = 0
    revenue: float = 0.0
    revenue_squares: float = 0.0  # per order
    seconds: float = 0.0
    seconds_squares: float = 0.0
    visitors_capped: bool = False
    arms: dict[ArmKey, SessionCounts] = field(default_factory=dict)  # the exposed sessions

    def count(self, session: _Session) -> None:
        """The session, and under each campaign's arm and segment it was exposed to."""
        self.add_session(session)
        if session.exposures:
            for campaign, (segment, arm) in session.exposures.items():
                self._arm((campaign, ALL, arm)).add_session(session)
                if segment != ALL:
                    self._arm((campaign, segment, arm)).add_session(session)

    def _arm(self, key: ArmKey) -> SessionCounts:
        counts = self.arms.get(key)
        if counts is None:
            if len(self.arms) >= MAX_ARM_CELLS:
                key = (key[0], OTHER, key[2])
                counts = self.arms.get(key)
            if counts is None:
                counts = self.arms[key] = SessionCounts(timeout=self.timeout)
        return counts

    def add_session(self, session: _Session) -> None:
        self.sessions += 1
        self.bounced += session.pages == 1 and session.others == 0
        self.converted += session.orders > 0
        self.repeat += session.repeat
        self.orders += session.orders
        self.revenue += session.revenue
        self.revenue_squares += session.revenue_squares
        seconds = session.last - session.start
        self.seconds += seconds
        self.seconds_squares += seconds * seconds

    def merge(self, other: SessionCounts) -> None:
        for name in ("sessions", "bounced", "converted", "repeat", "orders", "revenue",
                     "revenue_squares", "seconds", "seconds_squares"):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for key, counts in other.arms.items():
            self._arm(key).merge(counts)


@dataclass(slots=True)
class SessionTally(SessionCounts):
    _open: dict[str, _Session] = field(default_factory=dict)
    _deadlines: deque[tuple[float, str]] = field(default_factory=deque)
    _seen: set[str] = field(default_factory=set)
    _now: float = float("-inf")

    def add(self, ts: float, visitor: str, kind: str, value: float = 0.0) -> None:
        session = self._open.get(visitor)
        if session is not None and ts - session.last > self.timeout:
            self._close(visitor, session)
            session = None
        if session is None:
            session = self._open[visitor] = _Session(ts, ts, self._seen_before(visitor, ts))
        session.last = max(session.last, ts)
        if kind in PAGE_EVENTS:
            session.pages += 1
        elif kind != "impression":  # being shown something is not an interaction
            session.others += 1
        if kind == "purchase":
            session.orders += 1
            session.revenue += value
            session.revenue_squares += value * value
        self._deadlines.append((session.last + self.timeout, visitor))
        if ts > self._now:
            self.advance(ts)

    def expose(self, visitor: str, campaign: str, segment: str, arm: str) -> None:
        """The visitor's open session was shown a decision of ``campaign`` in ``arm``."""
        session = self._open.get(visitor)
        if session is None:
            return
        if session.exposures is None:
            session.exposures = {campaign: (segment, arm)}
        elif campaign not in session.exposures:
            session.exposures[campaign] = (segment, arm)

    def advance(self, now: float) -> None:
        """Close the sessions whose timeout passed at ``now``."""
        self._now = max(self._now, now)
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] < now:
            _, visitor = deadlines.popleft()
            session = self._open.get(visitor)
            if session is not None and session.last + self.timeout < now:
                self._close(visitor, session)

    def _seen_before(self, visitor: str, ts: float) -> bool:
        """Whether the visitor had a session before this one (and remember them)."""
        if visitor in self._seen:
            return True
        if len(self._seen) < MAX_VISITORS:
            self._seen.add(visitor)
        else:
            self.visitors_capped = True
        return False

    def _close(self, visitor: str, session: _Session) -> None:
        del self._open[visitor]
        self.count(session)

    def finish(self) -> None:
        for visitor, session in list(self._open.items()):
            self._close(visitor, session)
        self._deadlines.clear()


class RollingSessions(SessionTally):
    """Sessions counted per ``span`` of their start, for views of a recent ``window``."""

    def __init__(self, window: float, span: float = 300.0, timeout: float = TIMEOUT) -> None:
        super().__init__(timeout=timeout)
        self.window = window
        self.span = span
        self.spans: dict[int, SessionCounts] = {}
        self.last_seen: dict[str, float] = {}  # visitor -> their last event (inside the window)
        self._next_prune = float("-inf")

    def _seen_before(self, visitor: str, ts: float) -> bool:
        return visitor in self.last_seen

    def add(self, ts: float, visitor: str, kind: str, value: float = 0.0) -> None:
        SessionTally.add(self, ts, visitor, kind, value)
        self.last_seen[visitor] = max(ts, self.last_seen.get(visitor, ts))

    def _close(self, visitor: str, session: _Session) -> None:
        del self._open[visitor]
        key = int(session.start // self.span)
        counts = self.spans.get(key)
        if counts is None:
            counts = self.spans[key] = SessionCounts(timeout=self.timeout)
        counts.count(session)

    def view(self, since: float, now: float) -> SessionCounts:
        """The sessions started from ``since`` on: closed ones, and the open ones as they
        stand at ``now``; older spans and visitors idle since before the window are dropped."""
        self.advance(now)
        first = int(since // self.span)
        for old in [key for key in self.spans if key < first]:
            del self.spans[old]
        if now >= self._next_prune:  # forgetting idle visitors: once per span is enough
            self._next_prune = now + self.span
            for visitor in [v for v, last in self.last_seen.items() if last < since]:
                del self.last_seen[visitor]
        summed = SessionCounts(timeout=self.timeout)
        for counts in self.spans.values():  # the first span may start a little before since
            summed.merge(counts)
        for session in self._open.values():
            if session.start >= since:
                summed.count(session)
        return summed
