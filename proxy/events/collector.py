"""The event pipeline behind the endpoints: consent, suppression, dedup, durable append.

:meth:`EventCollector.collect` returns only after the events are durably appended to the
events log (the store's group commit). Per-user histories are appended in the same store step
(``Store.log_append_with_history``: one commit) unless the batch links an anonymous id to a
known one or recommenders learn from it (both read the history as it was before the batch):
then right after, off the reply path (before the answer when a trigger listens). Erasure
(:meth:`EventCollector.erase`) and retention (the background loop started by ``async with
collector``) live here too, because they act on the same keys and logs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import msgspec

from slotwise.proxy.events.aliases import link, resolve
from slotwise.proxy.events.config import EventsConfig
from slotwise.proxy.events.consent import PERSONAL
from slotwise.proxy.events.erasure import Erasure, erased_key, subject_hash
from slotwise.proxy.events.schema import Event, event_type
from slotwise.proxy.events.tasks import stop_task
from slotwise.proxy.offers_config import OffersConfig
from slotwise.proxy.state import (
    HistoryItem,
    LogRecord,
    Store,
    StoreUnavailable,
    subject_key,
)

if TYPE_CHECKING:
    from slotwise.proxy.recommend.observe import RecsObserver

_log = logging.getLogger(__name__)
_HISTORY_DATA_LIMIT = 1024  # bytes of properties kept beside each history item
# seconds between the tries of an erasure check after a write while the store is unreachable
_SETTLE_RETRIES = (0.05, 0.1, 0.25, 0.5, 1.0, 1.0)


class StoredEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One record of the events log, as consumers decode it (``msgspec.json.decode``)."""

    received: float
    consent: str  # "personal" or "contextual" (then the event carries no identifiers)
    event: Event


class AuditRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One record of the audit log. The user id itself is never written, only its hash."""

    action: str
    subject_sha256: str
    at: float
    actor: str
    keys: int
    events: int
    decisions: int
    repeat: bool


class CollectResult(msgspec.Struct, frozen=True):
    accepted: int  # newly stored
    duplicates: int  # already stored within the dedup window (stored once)
    suppressed: int  # about an erased user: not stored


class ErasureResult(msgspec.Struct, frozen=True):
    keys: int
    events: int
    decisions: int  # stored and still queued in this process (``queued`` of them)
    repeat: bool  # this user had been erased before (idempotent repeat)
    queued: int = 0


def history_key(subject: str) -> str:
    """The key of a user's bounded event history (read it with ``store.history``)."""
    return subject_key(subject, "history")


def _subject(event: Event) -> str | None:
    return event.user_id or event.anonymous_id


def _resolved(event: Event, known: dict[str, str]) -> str | None:
    """The subject an event is stored under: a linked anonymous id's known id."""
    subject = _subject(event)
    if subject is not None and event.user_id is None:
        return known.get(subject, subject)
    return subject


def _anonymous_only(events: Sequence[Event]) -> list[str]:
    return [e.anonymous_id for e in events if e.user_id is None and e.anonymous_id is not None]


_ENCODER = msgspec.json.Encoder()


def _links(event: Event) -> bool:
    """Does ``event`` link an anonymous id to a known one (aliases.link)?"""
    anonymous = event.anonymous_id
    return anonymous is not None and event.user_id is not None and anonymous != event.user_id


def _history_item(event: Event, now: float, keep: frozenset[str] | None) -> HistoryItem:
    """``event`` as its user's history keeps it: its properties only when its type is in
    ``keep`` (None: every type; events.history_properties) and they are not too large."""
    kind = event_type(event)
    data = b""
    if keep is None or kind in keep:
        properties = _ENCODER.encode(getattr(event, "properties", None))
        if len(properties) <= _HISTORY_DATA_LIMIT:
            data = properties
    # never ahead of this proxy's clock: a client clock running ahead must not put behaviour
    # in the future (a trigger armed late, a window that never starts)
    return HistoryItem(kind, min(event.time or now, now), data)


def _pairs_and_touched(
    events: Sequence[Event], known: dict[str, str]
) -> tuple[set[tuple[str, str]], set[str]]:
    """The (anonymous, known) links these events make, and every subject they touch."""
    pairs = {
        (e.anonymous_id, e.user_id)
        for e in events
        if e.anonymous_id is not None and e.user_id is not None and e.anonymous_id != e.user_id
    }
    touched = {s for pair in pairs for s in pair} | {
        s for s in (_resolved(e, known) for e in events) if s is not None
    }
    return pairs, touched


def _history_entries(
    events: Sequence[Event], records: Sequence[LogRecord], now: float, keep: frozenset[str] | None
) -> list[tuple[str, HistoryItem] | None]:
    """Each record's history entry (its subject's history key and item; None: no subject)."""
    return [
        (history_key(r.subject), _history_item(e, now, keep)) if r.subject is not None else None
        for e, r in zip(events, records, strict=True)
    ]


class EventCollector:
    """Long-lived: create once in the app lifespan and ``async with`` it."""

    def __init__(
        self,
        store: Store,
        config: EventsConfig | None = None,
        *,
        offers: OffersConfig | None = None,
    ) -> None:
        self.store = store
        self.config = config or EventsConfig()
        kept = self.config.history_properties
        self._history_keep: frozenset[str] | None = None if "*" in kept else frozenset(kept)
        self.offers = offers  # currencies are checked at ingest when it names a base currency
        # called with the newly stored events, off the reply path (offer budgets: purchases)
        self.after_store: list[Callable[[Sequence[Event]], Coroutine[Any, Any, None]]] = []
        self.erasure = Erasure(
            store, events_log=self.config.events_log, decisions_log=self.config.decisions_log
        )
        self._background: set[asyncio.Task[None]] = set()
        self._retention: asyncio.Task[None] | None = None
        # set by the app when policies are served: slotwise.proxy.triggers.TriggerEngine
        self._triggers: Any = None
        # the recommenders learn from what is stored (set by the app when it serves them)
        self.recs: RecsObserver | None = None

    @property
    def triggers(self) -> Any:
        """The trigger engine every accepted personal event re-evaluates (None: no triggers)."""
        return self._triggers

    @triggers.setter
    def triggers(self, engine: Any) -> None:
        self._triggers = engine
        if engine is not None:  # erasure takes the user out of its audience indexes
            self.erasure.purge_also(engine.forget)

    async def __aenter__(self) -> EventCollector:
        self._retention = asyncio.create_task(self._retention_loop())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._retention is not None:
            await stop_task(self._retention)
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    # -- collection -----------------------------------------------------------------------

    async def collect(
        self, events: Sequence[Event], *, consent: str, received: float | None = None
    ) -> CollectResult:
        """Store valid events; returns after the durable append. Raises StoreUnavailable."""
        at = time.time() if received is None else received
        personal = consent == PERSONAL
        erased = await self._erased_subjects(events) if personal else frozenset()
        # events carrying only an anonymous id that identify() linked: the known id's
        known = await resolve(self.store, _anonymous_only(events)) if personal else {}
        records: list[LogRecord] = []
        kept: list[Event] = []
        for event in events:
            subject = _subject(event) if personal else None
            if subject is not None and (subject in erased or known.get(subject) in erased):
                continue
            if subject is not None and event.user_id is None:
                subject = known.get(subject, subject)
            if not personal:
                event = msgspec.structs.replace(event, user_id=None, anonymous_id=None)
            if event.time is None:
                event = msgspec.structs.replace(event, time=at)
            data = _ENCODER.encode(StoredEvent(received=at, consent=consent, event=event))
            records.append(LogRecord(data, subject=subject, id=event.id))
            kept.append(event)
        subjects = {r.subject for r in records if r.subject is not None}
        # the histories in the events' own store step, when nothing must read them first
        fold = (
            personal and self.config.history_max_len > 0 and self.recs is None
            and not any(_links(e) for e in kept)
        )  # fmt: skip
        try:
            if fold:
                positions = await self.store.log_append_with_history(
                    self.config.events_log,
                    records,
                    _history_entries(kept, records, at, self._history_keep),
                    dedup_ttl=self.config.dedup_window,
                    max_len=self.config.history_max_len,
                    ttl=self.config.user_state_ttl,
                )
            else:
                positions = await self.store.log_append(
                    self.config.events_log, records, dedup_ttl=self.config.dedup_window
                )
            stored = [e for e, p in zip(kept, positions, strict=True) if p is not None]
            triggers = self.triggers if personal else None
            # a trigger listens: history and trigger states before the answer, so the very
            # next request sees them (slotwise.proxy.triggers)
            inline = (
                triggers is not None and bool(stored)
                and triggers.listens(event_type(e) for e in stored)
            )  # fmt: skip
            if inline:
                # the tombstones read once, after the derived state's writes too: that read
                # is the events' settle check as well (erasure.py)
                raced = await self._derive_now(stored, known, triggers, histories=not fold)
            else:
                # an erasure that ran meanwhile: what it missed goes now (erasure.py)
                raced = await self.erasure.settle(subjects)
        except StoreUnavailable:
            if subjects:  # the append may have landed all the same (a write that timed out)
                self._spawn(self._settle(subjects))
            raise
        fresh = [e for e in stored if _resolved(e, known) not in raced]
        records = [r for r in records if r.subject not in raced]
        if personal and fresh and not inline:
            self._spawn(self._derive(fresh, known, triggers, histories=not fold))
        elif fresh and not personal and self.recs is not None:  # contextual: for trending
            self._spawn(self.recs.observe(fresh, [None] * len(fresh)))
        for hook in self.after_store if fresh else ():
            self._spawn(hook(fresh))
        suppressed = len(events) - len(records)
        return CollectResult(len(fresh), len(records) - len(fresh), suppressed)

    async def _derive(
        self,
        events: Sequence[Event],
        known: dict[str, str],
        triggers: Any = None,
        *,
        histories: bool = True,
    ) -> None:
        """Per-user state from stored personal events: aliases, histories (unless appended
        with the events already), then triggers; the tombstones read after the writes."""
        pairs, touched = _pairs_and_touched(events, known)
        try:
            await self._derive_state(events, known, triggers, pairs, histories=histories)
        finally:
            # the tombstones read after the writes (failed ones too: they may have landed), so
            # an erasure that ran meanwhile sticks
            await self._settle_links(pairs, touched)

    async def _derive_now(
        self, events: Sequence[Event], known: dict[str, str], triggers: Any, *, histories: bool
    ) -> frozenset[str]:
        """:meth:`_derive` before the answer, its settle check the events' own: the subjects
        found erased. A failure of the derived state is logged (the events are stored); one
        of the tombstone read raises StoreUnavailable, as the events' settle check did."""
        pairs, touched = _pairs_and_touched(events, known)
        await self._guarded(self._derive_state(events, known, triggers, pairs, histories=histories))
        try:  # one try, as the events' own settle check: the caller answers 503
            erased = await self.erasure.settle(touched)
        except StoreUnavailable:  # and it is retried in the background
            self._spawn(self._settle_links(pairs, touched))
            raise
        await self._guarded(self._unlink_erased(pairs, erased))
        return erased

    async def _settle_links(self, pairs: set[tuple[str, str]], touched: set[str]) -> None:
        """:meth:`_settle` of ``touched``, then the links of erased users' anonymous ids."""
        await self._unlink_erased(pairs, await self._settle(touched))

    async def _unlink_erased(self, pairs: set[tuple[str, str]], erased: frozenset[str]) -> None:
        for anonymous, user in sorted(pairs):
            if user in erased and anonymous not in erased:
                await self.erasure.erase_link(anonymous)

    async def _derive_state(
        self,
        events: Sequence[Event],
        known: dict[str, str],
        triggers: Any,
        pairs: set[tuple[str, str]],
        *,
        histories: bool,
    ) -> None:
        """Aliases, histories (unless appended with the events already), then triggers."""
        config = self.config
        for anonymous, user in sorted(pairs):
            keys = (history_key(anonymous), history_key(user))
            await link(
                self.store, anonymous, user, keys, max_len=config.history_max_len,
                ttl=config.user_state_ttl,
            )  # fmt: skip
        if self.recs is not None:  # before the histories: it pairs with what came before
            subjects = [_resolved(e, known) for e in events]
            try:
                await self.recs.observe(events, subjects)
            except Exception as exc:  # the histories are still kept
                _log.warning("recommender state update failed: %s", exc)
        if histories and config.history_max_len > 0:
            await self._update_histories(events, known)
        if triggers is not None:
            await triggers.observe(self._by_subject(events, known))

    async def _settle(self, subjects: set[str]) -> frozenset[str]:
        """:meth:`Erasure.settle`, retried for a few seconds while the store is unreachable."""
        for delay in _SETTLE_RETRIES:
            try:
                return await self.erasure.settle(subjects)
            except StoreUnavailable:
                await asyncio.sleep(delay)
        return await self.erasure.settle(subjects)

    async def _erased_subjects(self, events: Sequence[Event]) -> frozenset[str]:
        subjects = sorted({s for e in events for s in (e.user_id, e.anonymous_id) if s is not None})
        if not subjects:
            return frozenset()
        # off the request path: bounded like a write, not by the short read timeout
        markers = await self.store.patient().get_many([erased_key(s) for s in subjects])
        erased = {s for s, m in zip(subjects, markers, strict=True) if m is not None}
        # an event is suppressed when any of its identifiers was erased
        for event in events:
            if event.user_id in erased or event.anonymous_id in erased:
                subject = _subject(event)
                if subject is not None:
                    erased.add(subject)
        return frozenset(erased)

    async def _update_histories(self, events: Sequence[Event], known: dict[str, str]) -> None:
        by_subject: dict[str, list[HistoryItem]] = {}
        now = time.time()
        for event in events:
            subject = _resolved(event, known)
            if subject is None:
                continue
            by_subject.setdefault(subject, []).append(_history_item(event, now, self._history_keep))
        # every user's history in one call (one round trip where the backend allows)
        await self.store.history_append_many(
            [(history_key(subject), items) for subject, items in by_subject.items()],
            max_len=self.config.history_max_len,
            ttl=self.config.user_state_ttl,
        )

    @staticmethod
    def _by_subject(events: Sequence[Event], known: dict[str, str]) -> list[tuple[str, Event]]:
        """(subject, event) pairs, an anonymous id linked to a known one read as the known."""
        pairs = []
        for event in events:
            subject = _subject(event)
            if subject is not None:
                pairs.append(
                    (known.get(subject, subject) if event.user_id is None else subject, event)
                )
        return pairs

    @staticmethod
    async def _guarded(work: Coroutine[Any, Any, object]) -> None:
        try:
            await work
        except Exception as exc:  # the events are stored; only derived state lags
            _log.warning("per-user history or erasure check failed: %s", exc)

    def _spawn(self, work: Coroutine[Any, Any, object]) -> None:
        task = asyncio.create_task(self._guarded(work))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- erasure --------------------------------------------------------------------------

    async def erase(self, subject: str, *, actor: str) -> ErasureResult:
        """Forget ``subject``: state, history, log entries, records still queued in this
        process; suppress its later events (slotwise.proxy.events.erasure says how).

        Idempotent. Audited (by hash) in the audit log.
        """
        done = await self.erasure.erase(subject)
        result = ErasureResult(
            done.keys, done.events, done.decisions, repeat=done.repeat, queued=done.queued
        )
        audit = AuditRecord(
            action="erase",
            subject_sha256=subject_hash(subject),
            at=time.time(),
            actor=actor,
            keys=done.keys,
            events=done.events,
            decisions=done.decisions,
            repeat=done.repeat,
        )
        await self.store.log_append(self.config.audit_log, [LogRecord(_ENCODER.encode(audit))])
        return result

    async def set_profile(self, subject: str, record: bytes, *, actor: str) -> bool:
        """Replace ``subject``'s profile (kept ``user_state_ttl``); False for an erased user.

        Audited like erasure (by hash). An erased user stays erased: a CRM sync that still
        holds them must not bring their data back.
        """
        if await self.is_erased(subject):
            return False
        store = self.store
        await store.set(subject_key(subject, "profile"), record, ttl=self.config.user_state_ttl)
        if await self.erasure.settle([subject]):  # erased meanwhile: not kept after all
            return False
        audit = AuditRecord(
            action="profile",
            subject_sha256=subject_hash(subject),
            at=time.time(),
            actor=actor,
            keys=1,
            events=0,
            decisions=0,
            repeat=False,
        )
        await store.log_append(self.config.audit_log, [LogRecord(_ENCODER.encode(audit))])
        return True

    async def is_erased(self, subject: str) -> bool:
        return await self.store.patient().get(erased_key(subject)) is not None

    # -- retention ------------------------------------------------------------------------

    async def apply_retention(self) -> int:
        """Trim raw events and decisions older than ``event_retention`` and audit records older
        than ``audit_retention``; how many went. Where the store archives (Redis with
        ``archive=``), what Redis need not hold any more moves to the archive first."""
        now = time.time()
        trimmed = 0
        audit = self.config.audit_log
        for log in (self.config.events_log, self.config.decisions_log, audit):
            archived = await self.store.log_archive(log)
            if archived:
                _log.info("retention: archived %d entries of log %s", archived, log)
        for log in (self.config.events_log, self.config.decisions_log):
            trimmed += await self.store.log_trim(log, before=now - self.config.event_retention)
        return trimmed + await self.store.log_trim(audit, before=now - self.config.audit_retention)

    async def _retention_loop(self) -> None:
        while True:
            try:
                trimmed = await self.apply_retention()
                if trimmed:
                    _log.info("retention: trimmed %d log entries", trimmed)
            except Exception as exc:  # retried next round; serving is unaffected
                _log.warning("retention pass failed: %s", exc)
            await asyncio.sleep(self.config.retention_interval)
