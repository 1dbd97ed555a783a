"""The trigger engine: every accepted personal event a trigger listens to re-evaluates the user.

The event collector (slotwise.proxy.events.collector) calls :meth:`TriggerEngine.observe` after
the events are durably appended and the user's history is updated, before it acknowledges them.
For each user it reads, in one round trip plus the history read beside it, the user's profile,
cart and trigger record; derives every trigger's state from the history
(slotwise.proxy.triggers.state); evaluates each ``when`` on the user's stored signals
(:func:`stored_signals`); writes the record back; keeps the audience index (one store set per
trigger, of the users who entered it, and ``USERS_KEY`` of every user while the policy names
segments: the segment audiences' candidates); and, for a new episode of a trigger with ``notify``,
enqueues one notification into the outbox (slotwise.proxy.notify.outbox), due at the ``on``
event's time plus ``wait``. The sender calls :func:`still_due` just before sending.

Consent first: only events collected with personal consent carry a user id, and only those
reach the engine. Serving (slotwise.proxy.personalisers.triggered) does not read the record:
it evaluates the same rules on the history the ``profile`` provider already read for the
request, so a request costs nothing more, and is right the moment the event is acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

import msgspec

from slotwise.plugins.profile_source import (
    CART_KEY,
    PROFILE_KEY,
    Cart,
    Event,
    cart_from_events,
    is_compact_profile,
)
from slotwise.proxy.caps import cap_key
from slotwise.proxy.events.schema import event_type
from slotwise.proxy.notify.outbox import (
    DEDUP_SECONDS,
    OUTBOX_LOG,
    Notification,
    notification_key,
    outbox_records,
)
from slotwise.proxy.offer_document import offer_document, offer_id
from slotwise.proxy.state import HistoryItem, Store, subject_key
from slotwise.proxy.state.base import subject_prefix
from slotwise.proxy.triggers.prices import PRICE_DROP, forget_views, index_views
from slotwise.proxy.triggers.state import (
    RECORD,
    Times,
    TriggerRecord,
    TriggerState,
    decode_record,
    derive,
    encode_record,
    listened,
    record_key,
)
from slotwise.types import Context, SignalValue

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledPolicySet, CompiledTrigger

log = logging.getLogger("slotwise.triggers")
T = TypeVar("T")
HISTORY: Final = "history"  # the collector's per-user history (proxy/events/collector.py)
NAMES_KEY: Final = "triggers:names"  # every trigger name an audience index was kept for
# every user a personal event was accepted for while the policy named segments: the segment
# audiences' candidates (filtered by their stored signals when listed)
USERS_KEY: Final = "audience:users"
FAN_OUT: Final = 64  # users evaluated in one pass (their reads gathered, their writes too)
IN_FLIGHT: Final = 32  # store calls of the engine in flight at once, over all requests


def audience_key(trigger: str) -> str:
    """The set of users who entered ``trigger`` (filtered by their record when listed)."""
    from slotwise.proxy.state.base import escape_key_part

    return f"triggers:audience:{escape_key_part(trigger)}"


class _Profile(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    # in the compact stored form's order (profile_source.PROFILE_FIELDS): read by position too
    age: int | None = None
    gender: str | None = None
    segments: tuple[str, ...] = ()
    visits: int = 0
    first_seen: float | None = None
    email: str | None = None
    time_zone: str | None = None


class _CompactProfile(_Profile, array_like=True, frozen=True, forbid_unknown_fields=False):
    """A profile stored in the compact form (profile_source.decode_profile)."""


_CART_EVENTS: Final = frozenset({"add_to_cart", "remove_from_cart", "purchase"})


def stored_signals(
    profile: _Profile | None, cart: Cart | None, history: Sequence[HistoryItem]
) -> dict[str, SignalValue]:
    """The signals known about a user without a request: consent, profile and cart.

    A ``when`` reading other signals (device, geo, page) holds only on a request that shows
    them: such a trigger's notification is not sent (its campaign is still shown).
    """
    signals: dict[str, SignalValue] = {"consent.level": "personal"}
    visits = 0
    cart_events = []
    for item in history:  # one pass: visits, and the few events a cart is rebuilt from
        name = item.event
        if name == "session_start":
            visits += 1
        elif name in _CART_EVENTS:
            cart_events.append(Event(name, item.at, item.data))
    if profile is not None:
        visits = max(visits, profile.visits)
        signals["user.segments"] = tuple(profile.segments)
        if profile.age is not None:
            signals["user.age"] = profile.age
        if profile.gender:
            signals["user.gender"] = profile.gender
    else:
        signals["user.segments"] = ()
    signals["user.visits"] = visits
    signals["user.is_new"] = visits <= 1
    if cart is None and cart_events:
        cart = cart_from_events(cart_events)
    signals["cart.value"] = float(cart.value) if cart is not None else 0.0
    signals["cart.count"] = cart.units if cart is not None else 0
    signals["cart.items"] = tuple(cart.items) if cart is not None else ()
    return signals


@dataclass(frozen=True, slots=True)
class StoredUser:
    """What the store knows of one user for their triggers, read in one round trip (plus the
    history beside it)."""

    profile: _Profile | None
    record: TriggerRecord | None
    context: Context  # the stored signals, the history, the time
    history: Sequence[HistoryItem]


async def read_user(store: Store, subject: str, now: float, history_seconds: float) -> StoredUser:
    """Read ``subject``'s profile, cart, trigger record and history."""
    (user,) = await read_users(store, [subject], now, history_seconds)
    return user


async def read_users(
    store: Store,
    subjects: Sequence[str],
    now: float,
    history_seconds: float,
    bounded: Callable[[Awaitable[Any]], Awaitable[Any]] | None = None,
) -> list[StoredUser]:
    """Read these users' profiles, carts and trigger records and their histories (one read
    where the backend can: ``Store.histories_and_values``)."""
    since = now - history_seconds
    wrap = bounded or (lambda call: call)
    history_keys: list[str] = []
    keys: list[str] = []
    for subject in subjects:
        prefix = subject_prefix(subject)  # subject_key(subject, name) is prefix + name
        history_keys.append(prefix + HISTORY)
        keys += (prefix + PROFILE_KEY, prefix + CART_KEY, prefix + RECORD)
    read = store.histories_and_values(history_keys, keys, since=since)
    histories, values = await wrap(read)
    users = []
    for i, history in enumerate(histories):
        raw_profile, raw_cart, raw_record = values[3 * i : 3 * i + 3]
        compact = raw_profile is not None and is_compact_profile(raw_profile)
        profile = (
            _decode_msgpack(raw_profile, _CompactProfile)
            if compact
            else _decode(raw_profile, _Profile)
        )
        cart = _decode(raw_cart, Cart)
        ctx = Context(stored_signals(profile, cart, history), now, Times(history))
        users.append(StoredUser(profile, decode_record(raw_record), ctx, history))
    return users


def evaluate_states(
    policy: CompiledPolicySet, ctx: Context
) -> Iterator[tuple[CompiledTrigger, TriggerState]]:
    """Each entered trigger's state, its `when` evaluated on ``ctx`` (stored signals)."""
    times = ctx.history
    assert isinstance(times, Times)
    for trigger in policy.triggers:
        state = derive(trigger, times)
        if state is not None:
            yield trigger, msgspec.structs.replace(state, when=_holds(trigger, ctx))


class TriggerEngine:
    """Long-lived (the app lifespan): evaluates users' triggers as their events arrive."""

    def __init__(
        self,
        store: Store,
        policy: Callable[[], CompiledPolicySet | None],
        *,
        ttl: float | None = None,
        history_days: float = 30.0,
    ) -> None:
        self.store = store
        self._policy = policy
        self._ttl = ttl
        self._history_seconds = history_days * 86_400.0
        self._cached: tuple[object, frozenset[str]] = (None, frozenset())
        # however many requests evaluate at once, they never hold more store connections
        self._in_flight = asyncio.Semaphore(IN_FLIGHT)

    def policy(self) -> CompiledPolicySet | None:
        """The serving policy set (its triggers are the audiences)."""
        return self._policy()

    def listens(self, event_types: Iterable[str]) -> bool:
        """Does a trigger of the serving policy enter on, or get cancelled by, one of these?"""
        policy = self._policy()
        if policy is None or not policy.triggers:
            return False
        if self._cached[0] is not policy:
            self._cached = (policy, listened(policy.triggers))
        names = self._cached[1]
        return any(name in names for name in event_types)

    async def observe(self, events: Iterable[tuple[str, Any]], now: float | None = None) -> int:
        """Accepted personal events as (user, event): the users re-evaluated whose events a
        trigger listens to; product views indexed when a trigger listens to ``price_drop``.
        How many notifications were newly enqueued."""
        policy = self._policy()
        if policy is None or not (policy.triggers or policy.segments):
            return 0
        at = time.time() if now is None else now
        pairs = list(events)
        names = frozenset[str]()
        if policy.triggers:
            self.listens(())  # the cached names of this policy
            names = self._cached[1]
        subjects = sorted({subject for subject, event in pairs if event_type(event) in names})
        if policy.segments:  # the users evaluated are indexed with their record's write
            others = sorted({subject for subject, _ in pairs} - set(subjects))
            if others:
                encoded = [subject.encode() for subject in others]
                await self._bounded(self.store.set_add(USERS_KEY, *encoded))
        if not policy.triggers:
            return 0
        if PRICE_DROP in names:
            await index_views(self.store, pairs, at, self._ttl)
        enqueued = 0
        # a bounded fan-out: a batch of many users must not take every store connection
        for start in range(0, len(subjects), FAN_OUT):
            enqueued += await self.evaluate_many(subjects[start : start + FAN_OUT], policy, at)
        return enqueued

    async def evaluate(self, subject: str, policy: CompiledPolicySet, now: float) -> int:
        """One user's triggers from their history: record, audiences, notifications."""
        return await self.evaluate_many([subject], policy, now)

    async def evaluate_many(
        self, subjects: Sequence[str], policy: CompiledPolicySet, now: float
    ) -> int:
        """These users' triggers: read concurrently (the store batches them), then the
        notifications, the records and the audience indexes in one store call (one
        transaction or script where the backend allows). The outbox comes first: a record
        never names a notification that was not enqueued."""
        store = self.store
        users = await read_users(store, subjects, now, self._history_seconds, self._bounded)
        records: list[tuple[str, TriggerRecord]] = []
        notifications: list[Notification] = []
        entered: dict[str, list[bytes]] = {}
        for subject, user in zip(subjects, users, strict=True):
            previous, ctx = user.record, user.context
            states: dict[str, TriggerState] = {}
            for trigger, state in evaluate_states(policy, ctx):
                before = previous.states.get(trigger.name) if previous is not None else None
                states[trigger.name] = self._notify(
                    subject, trigger, state, before, ctx, user.profile, notifications
                )
                if before is None:  # indexed once per user and trigger; listing filters
                    entered.setdefault(trigger.name, []).append(subject.encode())
            records.append((subject, TriggerRecord(updated=now, states=states)))
        capped = await self._over_cap(policy, notifications, now)
        if capped:  # the episode is not notified, now or later: its record says so
            notifications = [n for n in notifications if n.key not in capped]
            records = [(s, _mark_capped(r, capped)) for s, r in records]
        members: list[tuple[str, Sequence[bytes]]] = []
        if policy.segments:  # the segment audiences' candidates (audiences.py)
            members.append((USERS_KEY, [subject.encode() for subject in subjects]))
        if entered:
            members.append((NAMES_KEY, [name.encode() for name in sorted(entered)]))
            members += [(audience_key(n), m) for n, m in sorted(entered.items())]
        positions = await self._bounded(
            store.log_append_and_set(
                OUTBOX_LOG,
                outbox_records(notifications),
                dedup_ttl=DEDUP_SECONDS,
                values=[(record_key(s), encode_record(record)) for s, record in records],
                ttl=self._ttl,
                members=members,
            )
        )
        sent = [n for n, p in zip(notifications, positions, strict=True) if p is not None]
        if sent:
            await self._count(policy, sent, now)
        return len(sent)

    async def _bounded(self, call: Awaitable[T]) -> T:
        async with self._in_flight:
            return await call

    async def _over_cap(
        self, policy: CompiledPolicySet, notifications: Sequence[Notification], now: float
    ) -> set[str]:
        """The keys of the notifications whose trigger's cap the user reached (one read)."""
        caps = {t.name: t.cap for t in policy.triggers if t.cap is not None}
        wanted = [(n, caps[n.trigger]) for n in notifications if n.trigger in caps]
        if not wanted:
            return set()
        counts = await self.store.get_many(
            [cap_key(n.subject, f"notify:{n.trigger}", cap, now) for n, cap in wanted]
        )
        return {
            n.key
            for (n, cap), count in zip(wanted, counts, strict=True)
            if count is not None and int(count) >= cap.count
        }

    async def _count(
        self, policy: CompiledPolicySet, sent: Sequence[Notification], now: float
    ) -> None:
        """One more notification of each capped trigger for its user."""
        caps = {t.name: t.cap for t in policy.triggers if t.cap is not None}
        for n in sent:
            cap = caps.get(n.trigger)
            if cap is not None:
                key = cap_key(n.subject, f"notify:{n.trigger}", cap, now)
                await self.store.incr(key, 1, ttl=cap.per - now % cap.per + 60.0)

    def _notify(
        self,
        subject: str,
        trigger: CompiledTrigger,
        state: TriggerState,
        before: TriggerState | None,
        ctx: Context,
        profile: _Profile | None,
        out: list[Notification],
    ) -> TriggerState:
        """Enqueue the notification of a new, live episode whose `when` holds."""
        if trigger.notify is None:
            return state
        if before is not None and before.started == state.started and before.notification:
            return msgspec.structs.replace(state, notification=before.notification)
        if state.cancelled_at is not None or not state.when or ctx.now > state.until:
            return state
        key = notification_key(subject, trigger.name, state.started)
        notify = trigger.notify
        arm = trigger.offer_for(ctx)
        traits: dict[str, Any] = {"user_id": subject}
        if profile is not None:
            traits.update(
                {k: v for k, v in msgspec.structs.asdict(profile).items() if v not in (None, ())}
            )
        traits.update({k: v for k, v in ctx.signals.items() if k.startswith("cart.")})
        out.append(
            Notification(
                key=key,
                subject=subject,
                trigger=trigger.name,
                channel=notify.channel,
                template=notify.template,
                due=state.armed_at,
                created=ctx.now,
                quiet_start=notify.quiet_start,
                quiet_end=notify.quiet_end,
                time_zone=profile.time_zone if profile is not None else None,
                traits=traits,
                offer=offer_document(arm, offer_id=offer_id(key, arm)) if arm else None,
            )
        )
        return msgspec.structs.replace(state, notification=key)

    async def forget(self, subject: str) -> int:
        """Erasure: take ``subject`` out of every audience index (their record goes with
        ``erase_subject``); how many indexes held them."""
        store = self.store.patient()  # erasure is off the request path: patient reads
        names = await store.set_members(NAMES_KEY)
        removed = await store.set_remove(USERS_KEY, subject.encode())
        for name in sorted(names):
            removed += await store.set_remove(audience_key(name.decode()), subject.encode())
        removed += await forget_views(store, subject)
        await store.log_erase(OUTBOX_LOG, subject)  # their pending notifications
        return removed


async def still_due(store: Store, notification: Notification, now: float | None = None) -> bool:
    """Whether ``notification`` is still to be sent: call it just before sending.

    False when the user was erased (their record is gone), when a newer ``on`` event started
    another episode (that one has its own notification), when an ``unless`` event arrived
    within the trigger's ``unless`` window (read from the history itself, so an event
    acknowledged a moment ago counts), or when the trigger's ``window`` is over.
    """
    at = time.time() if now is None else now
    subject = notification.subject
    reading = asyncio.ensure_future(store.history(subject_key(subject, HISTORY)))
    try:
        record = decode_record(await store.get(record_key(subject)))
    except BaseException:
        reading.cancel()
        raise
    history = await reading
    state = record.states.get(notification.trigger) if record is not None else None
    if state is None:
        return False
    if notification_key(subject, notification.trigger, state.started) != notification.key:
        return False
    if at > state.until:
        return False
    if state.unless is not None:
        cancelled = Times(history).first_in(
            state.unless, state.started, state.started + state.within
        )
        if cancelled is not None:
            return False
    return state.cancelled_at is None


def _mark_capped(record: TriggerRecord, capped: set[str]) -> TriggerRecord:
    states = {
        name: msgspec.structs.replace(state, notification=f"capped:{state.notification}")
        if state.notification in capped
        else state
        for name, state in record.states.items()
    }
    return msgspec.structs.replace(record, states=states)


def _holds(trigger: CompiledTrigger, ctx: Context) -> bool:
    try:
        # `due` without its time window: the condition alone, on stored signals
        return trigger.condition_holds(ctx)
    except Exception:  # a condition that cannot be evaluated here does not hold
        return False


def _decode_msgpack(data: bytes | None, kind: type[Any]) -> Any:
    if data is None:
        return None
    try:
        return msgspec.msgpack.decode(data, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _decode(data: bytes | None, kind: type[Any]) -> Any:
    if data is None:
        return None
    try:
        return msgspec.json.decode(data, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return None


def phases(record: TriggerRecord | None, now: float) -> Mapping[str, str]:
    """trigger name -> phase at ``now`` (every state of the record)."""
    if record is None:
        return {}
    return {name: state.phase(now) for name, state in record.states.items()}
