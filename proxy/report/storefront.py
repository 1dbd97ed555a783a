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

Streaming like the campaign counts: a session stays open until the stream's time passes its
last event plus the timeout, so memory holds the visitors active in the last half hour, and
the visitors seen (for repeat sessions, up to ``MAX_VISITORS``; beyond it a visitor's later
sessions count as first ones and ``visitors_capped`` says so).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

TIMEOUT = 1800.0
MAX_VISITORS = 2_000_000
PAGE_EVENTS = frozenset({"page_view", "product_view"})


@dataclass(slots=True)
class _Session:
    start: float
    last: float
    pages: int = 0
    others: int = 0
    orders: int = 0


@dataclass(slots=True)
class SessionTally:
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
            session = self._open[visitor] = _Session(ts, ts)
            if visitor in self._seen:
                self.repeat += 1
            elif len(self._seen) < MAX_VISITORS:
                self._seen.add(visitor)
            else:
                self.visitors_capped = True
        session.last = max(session.last, ts)
        if kind in PAGE_EVENTS:
            session.pages += 1
        else:
            session.others += 1
        if kind == "purchase":
            session.orders += 1
            self.orders += 1
            self.revenue += value
            self.revenue_squares += value * value
        self._deadlines.append((session.last + self.timeout, visitor))
        if ts > self._now:
            self.advance(ts)

    def advance(self, now: float) -> None:
        """Close the sessions whose timeout passed at ``now``."""
        self._now = max(self._now, now)
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] < now:
            _, visitor = deadlines.popleft()
            session = self._open.get(visitor)
            if session is not None and session.last + self.timeout < now:
                self._close(visitor, session)

    def _close(self, visitor: str, session: _Session) -> None:
        del self._open[visitor]
        self.sessions += 1
        self.bounced += session.pages == 1 and session.others == 0
        self.converted += session.orders > 0
        seconds = session.last - session.start
        self.seconds += seconds
        self.seconds_squares += seconds * seconds

    def finish(self) -> None:
        for visitor, session in list(self._open.items()):
            self._close(visitor, session)
        self._deadlines.clear()
