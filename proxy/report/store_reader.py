"""Reading the state store's ``decisions`` and ``events`` logs for a report, merged by time.

Pages of ``PAGE`` entries, the next page read while this one is counted; decisions decoded as
the proxy wrote them, events from the collector's envelope (impressions, clicks and
conversions that carry a decision id are its events). ``read_store_from`` carries on from a
``Cursor`` (the dashboard reads what is new every few seconds); this module reads no learner
code, so the proxy can import it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgspec

from slotwise.proxy.decision_codec import decode_stored, stored_ts
from slotwise.proxy.decision_log import DecisionRecord
from slotwise.proxy.events.schema import PurchaseProps
from slotwise.proxy.offer_money import joined_purchase
from slotwise.proxy.report.tally import NO_POSITION, ReportTally
from slotwise.proxy.state import LogEntry, Store

DECISIONS_LOG = "decisions"
EVENTS_LOG = "events"
PAGE = 2000


@dataclass(frozen=True, slots=True)
class Selection:
    """Which decisions a report reads: ``since <= ts < until``, some campaigns (all: empty)."""

    since: float | None = None
    until: float | None = None
    campaigns: frozenset[str] = frozenset()

    def keeps(self, record: DecisionRecord) -> bool:
        ts = record.ts
        if (self.since is not None and ts < self.since) or (
            self.until is not None and ts >= self.until
        ):
            return False
        return not self.campaigns or record.campaign in self.campaigns


class _Props(msgspec.Struct):
    value: float | int | None = None


class _Slot(msgspec.Struct):
    slot: str | None = None  # a list pixel's position


class _Event(msgspec.Struct):
    type: str = ""
    decision_id: str | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    time: float | None = None
    # decoded for conversions and purchases only (msgspec.Raw takes no union with None)
    properties: msgspec.Raw = msgspec.Raw(b"")


class _Envelope(msgspec.Struct):
    event: _Event
    received: float = 0.0


_ENVELOPE = msgspec.json.Decoder(_Envelope)


def feed_decision(tally: ReportTally, record: DecisionRecord, selection: Selection) -> None:
    if selection.keeps(record):
        tally.add_decision(record)
    else:
        tally.stats.outside += 1


async def _pages(
    store: Store, log: str, after: str, count: int = PAGE
) -> AsyncIterator[list[LogEntry]]:
    """The log's pages after ``after``, the next one read while the caller works on this one."""
    page = await store.log_read(log, after=after, count=count)
    while page:
        following = asyncio.ensure_future(store.log_read(log, after=page[-1].position, count=count))
        try:
            yield page
        except BaseException:
            following.cancel()
            raise
        page = await following


def _decode_decisions(
    entries: list[LogEntry], tally: ReportTally, skip_before: float | None = None
) -> list[_Item]:
    out: list[_Item] = []
    for entry in entries:
        try:
            # catching up on a long log: the time alone is read of the old entries
            if skip_before is not None and stored_ts(entry.data) < skip_before:
                tally.stats.outside += 1
                continue
            # the report divides by no propensity: the record alone, without the log's checks
            record = decode_stored(entry.data)
        except msgspec.MsgspecError:
            tally.stats.unreadable += 1
            continue
        out.append((record.ts, record, entry.position))
    return out


def _decode_events(entries: list[LogEntry], tally: ReportTally) -> list[_Item]:
    out: list[_Item] = []
    for entry in entries:
        try:
            envelope = _ENVELOPE.decode(entry.data)
        except msgspec.MsgspecError:
            tally.stats.unreadable += 1
            continue
        event = envelope.event
        ts = event.time if event.time is not None else envelope.received
        out.append((ts, event, entry.position))
    return out


_Item = tuple[float, Any, str]  # (time, decision record or event, position)


class _Stream:
    """One log as decoded pages, with a read position in the current one."""

    __slots__ = ("pages", "decode", "tally", "items", "at", "done")

    def __init__(self, pages: AsyncIterator[list[LogEntry]], decode: Any, tally: Any) -> None:
        self.pages = pages
        self.decode = decode  # (entries, tally) -> items
        self.tally = tally
        self.items: list[_Item] = []
        self.at = 0
        self.done = False

    async def fill(self) -> None:
        """The next non-empty page, or ``done``."""
        while self.at >= len(self.items) and not self.done:
            page = await anext(self.pages, None)
            if page is None:
                self.done = True
                self.items, self.at = [], 0
            else:
                self.items, self.at = self.decode(page, self.tally), 0


@dataclass(slots=True)
class Cursor:
    """Where a reader of the store's two logs is: the last position read of each."""

    decisions: str = "0"
    events: str = "0"


async def read_store(store: Store, tally: ReportTally, selection: Selection) -> None:
    """Feed the store's decisions and events logs, merged by time, then finish."""
    await read_store_from(store, tally, selection, Cursor())
    tally.finish()


async def read_store_from(
    store: Store,
    tally: ReportTally,
    selection: Selection,
    cursor: Cursor,
    *,
    pause_every: int = 0,
    skip_before: float | None = None,
    page: int = PAGE,
) -> int:
    """Feed what the logs hold after ``cursor`` (moved along), merged by time; the entries
    read. With ``pause_every``, yield to the event loop after that many (a proxy's dashboard
    reads beside the requests it serves); decisions before ``skip_before`` are skipped on
    their time alone (counted as outside)."""

    def decisions(entries: list[LogEntry], tally: ReportTally) -> list[_Item]:
        return _decode_decisions(entries, tally, skip_before)

    d = _Stream(_pages(store, DECISIONS_LOG, cursor.decisions, page), decisions, tally)
    e = _Stream(_pages(store, EVENTS_LOG, cursor.events, page), _decode_events, tally)
    count = 0
    await d.fill()
    await e.fill()
    while not (d.done and e.done):
        # merge the two current pages without awaiting, up to the end of either (or a pause)
        ds, es = d.items, e.items
        di, ei = d.at, e.at
        dn, en = len(ds), len(es)
        budget = pause_every or (dn + en)
        while budget and (di < dn or d.done) and (ei < en or e.done) and not (d.done and e.done):
            if ei >= en or (di < dn and ds[di][0] <= es[ei][0]):
                ts, record, position = ds[di]
                feed_decision(tally, record, selection)
                cursor.decisions = position
                di += 1
            else:
                ts, event, position = es[ei]
                _feed_event(tally, ts, event)
                cursor.events = position
                ei += 1
            count += 1
            budget -= 1
            if di >= dn and ei >= en:
                break
        d.at, e.at = di, ei
        if pause_every and not budget:
            await asyncio.sleep(0)
        await d.fill()
        await e.fill()
    return count


_PROPS = msgspec.json.Decoder(_Props)
_SLOT = msgspec.json.Decoder(_Slot)
_PURCHASE = msgspec.json.Decoder(PurchaseProps)


def _value(event: _Event) -> float:
    if not event.properties:
        return 0.0
    try:
        raw = _PROPS.decode(event.properties).value
    except msgspec.MsgspecError:
        return 0.0
    return float(raw) if isinstance(raw, int | float) else 0.0


def _purchase(tally: ReportTally, ts: float, event: _Event) -> bool:
    """Join a purchase as the learner does (slotwise.proxy.offer_money.joined_purchase);
    False when it joins no decision."""
    if not event.properties:
        return False
    try:
        props = _PURCHASE.decode(event.properties)
    except msgspec.MsgspecError:
        return False
    joined = joined_purchase(props, event.decision_id, tally.offers_config)
    if joined is None:
        return False
    decision_id, money = joined
    tally.add_event(decision_id, ts, "purchase", money.revenue, money.discount_cost)
    return True


def _position(event: _Event) -> int:
    """A list pixel's position (``properties.slot``), NO_POSITION without a readable one."""
    if not event.properties:
        return NO_POSITION
    try:
        slot = _SLOT.decode(event.properties).slot
    except msgspec.MsgspecError:
        return NO_POSITION
    return int(slot) if slot is not None and slot.isascii() and slot.isdigit() else NO_POSITION


def _feed_event(tally: ReportTally, ts: float, event: _Event) -> None:
    kind = event.type
    value = _value(event) if kind in ("conversion", "purchase") else 0.0
    sessions = tally.storefront
    did = event.decision_id
    shown = (
        tally.open_decision(did)
        if did is not None and (kind == "impression" or kind == "click")
        else None
    )
    if sessions is not None:
        visitor = event.user_id or event.anonymous_id
        if visitor is not None:
            sessions.add(ts, visitor, event.type, value)
            # the session was shown this decision: its campaign's arm. Being shown only (an
            # impression): a click or an order naming it would pick the sessions by outcome
            if kind == "impression" and shown is not None and shown.arm:
                sessions.expose(visitor, shown.campaign, shown.segment, shown.arm)
    if kind == "purchase":
        if not _purchase(tally, ts, event):
            tally.stats.events += 1
            tally.stats.ignored_events += 1
        return
    if did is None:
        tally.stats.events += 1
        tally.stats.ignored_events += 1
        return
    if tally.lists_seen and shown is not None and shown.positions is not None:
        # a list's impression or click: at which position
        tally.add_event(did, ts, kind, value, position=_position(event))
        return
    tally.add_event(did, ts, kind, value)
