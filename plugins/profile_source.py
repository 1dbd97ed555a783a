"""Where the ``profile`` provider reads a user's profile, cart and recent events from.

:class:`ProfileSource` is the narrow interface it needs. :class:`StoreProfileSource` reads it
from the state store (``slotwise.proxy.state``: any backend, chosen by URL);
:class:`MemoryProfileSource` holds it in a dict, for tests and demos. Record layout in the
store, per user (``subject_key(user, name)``):

- ``profile``: JSON ``{"age": 31, "gender": "f", "segments": ["loyal"], "visits": 12,
  "first_seen": 1700000000.0}`` (every field optional), or the compact form the admin
  endpoint stores since issue 22: a MessagePack array of the fields of
  :data:`PROFILE_FIELDS` in that order, trailing absent ones left out
  (:func:`decode_profile`, :func:`encode_profile_fields`);
- ``cart``: JSON ``{"value": 59.9, "items": ["sku-1", "sku-2"], "count": 3}`` (``count`` is the
  number of units; it defaults to the number of items);
- ``history``: the store's bounded history of ``HistoryItem(event, at, data)``, written by the
  event collector (``slotwise.proxy.events``); ``data`` is the event's JSON properties for the
  types ``events.history_properties`` keeps (by default those slotwise reads: product views,
  price checks, cart changes, purchases), empty for the others (docs/events.md).

Without a ``cart`` record, the cart is rebuilt from that history (:func:`cart_from_events`):
``add_to_cart`` and ``remove_from_cart`` since the last ``purchase``.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Final, Protocol, TypeVar

import msgspec

# the Structs live in a module that stays pure Python: msgspec misreads the annotations of a
# Struct defined in a module compiled with mypyc (slotwise/native.py compiles this one)
from slotwise.plugins.profile_records import Cart as Cart
from slotwise.plugins.profile_records import Profile as Profile
from slotwise.plugins.profile_records import _CompactProfile, _Product

PROFILE_KEY = "profile"
CART_KEY = "cart"
EVENTS_KEY = "history"  # the event collector's per-user history (proxy/events/collector.py)


# The compact stored profile's fields, in array order: append only, never reorder (stored
# profiles index it). The fields of slotwise.proxy.events.profiles.ProfileRecord; a reader
# takes the ones it knows (its struct's fields are a prefix of these) and ignores the rest.
PROFILE_FIELDS: tuple[str, ...] = (
    "age", "gender", "segments", "visits", "first_seen", "email", "time_zone",
)  # fmt: skip


def is_compact_profile(raw: bytes) -> bool:
    """Whether a stored profile is in the compact form: a MessagePack array, where JSON is an
    object (``{``, perhaps after whitespace)."""
    return bool(raw) and 0x90 <= raw[0] <= 0x9F


def encode_profile_fields(values: Sequence[object]) -> bytes:
    """The compact stored form of a profile's values in :data:`PROFILE_FIELDS` order (about
    half its JSON: no field names; absent values at the end left out, nil before)."""
    end = len(values)
    while end and values[end - 1] == _ABSENT[min(end, len(_ABSENT)) - 1]:
        end -= 1
    return _COMPACT_ENCODER.encode(values[:end])


# each field's value when absent (a later field's: None)
_ABSENT: tuple[object, ...] = (None, None, (), 0, None, None, None, None)


@dataclass(frozen=True, slots=True)
class Event:
    """One past event of a user: its type (see ``EVENT_TYPES``), when, and its properties."""

    event: str
    at: float
    data: bytes = b""  # the event's JSON properties, when the collector kept them


# decoders made once: msgspec.json.decode(..., type=T) looks T's decoding up on every call
_PRODUCT = msgspec.json.Decoder(_Product)
_PROFILE = msgspec.json.Decoder(Profile)
_PROFILE_COMPACT = msgspec.msgpack.Decoder(_CompactProfile)
_COMPACT_ENCODER = msgspec.msgpack.Encoder()
_CART = msgspec.json.Decoder(Cart)
_AT = attrgetter("at")


def decode_profile(raw: bytes) -> Profile:
    """A stored profile, in either form (JSON from earlier versions or written directly, or
    the compact one); raises msgspec.DecodeError or ValidationError as a JSON decode would."""
    if is_compact_profile(raw):
        return _PROFILE_COMPACT.decode(raw)
    return _PROFILE.decode(raw)


def cart_from_events(events: Iterable[Event]) -> Cart | None:
    """The cart as the events left it: adds and removes since the last purchase, in order.

    None when the events say nothing about a cart. Events without readable properties are
    skipped (the collector drops properties over its size limit).
    """
    lines: dict[str, list[float]] = {}  # product id -> [quantity, unit price]
    seen = False
    for item in sorted(events, key=_AT):
        if item.event == "purchase":
            lines.clear()
            seen = True
            continue
        if item.event not in ("add_to_cart", "remove_from_cart") or not item.data:
            continue
        try:
            product = _PRODUCT.decode(item.data)
        except (msgspec.DecodeError, UnicodeDecodeError):
            continue
        seen = True
        line = lines.setdefault(product.product_id, [0.0, 0.0])
        if item.event == "add_to_cart":
            line[0] += product.quantity
            if product.price is not None:
                line[1] = product.price
        else:
            line[0] -= product.quantity
            if line[0] <= 0:
                del lines[product.product_id]
    if not seen:
        return None
    return Cart(
        value=round(sum(quantity * price for quantity, price in lines.values()), 2),
        items=tuple(lines),
        count=int(sum(quantity for quantity, _ in lines.values())),
    )


class UserErased(Exception):
    """The user id was erased (``DELETE /_sw/admin/users/{id}``): nothing of it is to be used."""


class Aliased(Exception):
    """The id is an anonymous one that ``identify()`` linked to ``user_id``: read that one."""

    def __init__(self, user_id: str) -> None:
        super().__init__(user_id)
        self.user_id = user_id


class ProfileSource(Protocol):
    """Reads one user's records; each call may raise (the provider's signals are then absent)."""

    async def records(self, user_id: str) -> tuple[Profile | None, Cart | None]:
        """The user's profile and cart (None where there is none), in one round trip; raises
        :class:`UserErased` for an erased user when the source knows erasures, and
        :class:`Aliased` for an anonymous id linked to a known one when it knows aliases."""
        ...

    async def events(self, user_id: str, since: float) -> Sequence[Event]:
        """The user's events at or after ``since``, oldest first."""
        ...


# What a source's synchronous read_now(user_id, now, since) answers: the records, the names of
# the frequency caps reached at ``now`` and the events at or after ``since``
Read = tuple[Profile | None, Cart | None, tuple[str, ...], Sequence[Event]]


class EventSnapshot:
    """An immutable :class:`~slotwise.plugins.schema.EventHistory` over events read once."""

    __slots__ = ("_times", "events")

    def __init__(self, events: Iterable[Event]) -> None:
        # the events themselves too, oldest first: the recommenders read their products
        self.events: tuple[Event, ...] = tuple(events)
        times: dict[str, list[float]] = {}
        for item in self.events:
            times.setdefault(item.event, []).append(item.at)
        self._times = {name: sorted(ts) for name, ts in times.items()}

    def count(self, event: str, since: float) -> int:
        times = self._times.get(event)
        if not times:
            return 0
        return len(times) - bisect.bisect_left(times, since)

    def last(self, event: str) -> float | None:
        times = self._times.get(event)
        return times[-1] if times else None


@dataclass
class MemoryProfileSource:
    """Profiles, carts and events in memory (tests, demos): fill with :meth:`add`."""

    profiles: dict[str, Profile] = field(default_factory=dict)
    carts: dict[str, Cart] = field(default_factory=dict)
    history: dict[str, list[Event]] = field(default_factory=dict)
    answers_at_once = True  # its reads never wait (a class attribute, not a field)
    reads_now = True  # read_now answers synchronously (see StoreProfileSource.reads_now)

    def add(
        self,
        user_id: str,
        *,
        profile: Profile | None = None,
        cart: Cart | None = None,
        events: Iterable[Event] = (),
    ) -> None:
        if profile is not None:
            self.profiles[user_id] = profile
        if cart is not None:
            self.carts[user_id] = cart
        self.history.setdefault(user_id, []).extend(events)

    async def records(self, user_id: str) -> tuple[Profile | None, Cart | None]:
        return self.profiles.get(user_id), self.carts.get(user_id)

    async def events(self, user_id: str, since: float) -> Sequence[Event]:
        return self._events(user_id, since)

    def _events(self, user_id: str, since: float) -> list[Event]:
        return [e for e in self.history.get(user_id, ()) if e.at >= since]

    def read_now(self, user_id: str, now: float, since: float) -> Read:
        """``records`` and ``events`` at once, synchronously (no caps: it knows none)."""
        return self.profiles.get(user_id), self.carts.get(user_id), (), self._events(user_id, since)


class _HistoryItem(Protocol):
    @property
    def event(self) -> str: ...

    @property
    def at(self) -> float: ...

    @property
    def data(self) -> bytes: ...


class KeyValueHistoryStore(Protocol):
    """The part of ``slotwise.proxy.state.Store`` this module reads."""

    async def get_many(self, keys: Sequence[str]) -> Sequence[bytes | None]: ...

    async def history(self, key: str, *, since: float = 0.0) -> Sequence[Any]: ...


# A store's synchronous get_many and history (memory:// has them: get_many_now, history_now)
_GetNow = Callable[[Sequence[str]], Sequence[bytes | None]]
_HistoryNow = Callable[..., Sequence[Any]]


_T = TypeVar("_T")
_EVENT_ONLY: Final = {Event}
_DECODED = 8192  # decoded profiles (and carts) kept: those of the users seen lately
_USERS = 4096  # users whose store keys are kept


def _decoded(memo: dict[bytes, _T], raw: bytes, decode: Callable[[bytes], _T]) -> _T:
    record = decode(raw)
    if len(memo) >= _DECODED:
        memo.clear()
    memo[bytes(raw)] = record
    return record


class StoreProfileSource:
    """A :class:`ProfileSource` over the state store.

    ``subject_key`` is ``slotwise.proxy.state.base.subject_key``: passed in rather than
    imported so that the plugin API does not depend on the proxy package.
    """

    def __init__(
        self,
        store: KeyValueHistoryStore,
        subject_key: Callable[[str, str], str],
        erased_key: Callable[[str], str] | None = None,
        alias_key: Callable[[str], str] | None = None,
        cap_keys: Callable[[str, float], Sequence[tuple[str, str, int]]] | None = None,
    ):
        self._store = store
        self._key = subject_key
        self._erased = erased_key
        self._alias = alias_key
        # (name, counter key, limit) of the user's frequency caps (slotwise.proxy.caps)
        self._caps = cap_keys
        # reads that never wait (memory://): the profile provider then runs without a task
        self.answers_at_once = getattr(store, "answers_at_once", False) is True
        # and a store with synchronous reads (memory://'s get_many_now, history_now): then
        # read_now reads without a coroutine, and the provider answers through its fetch_now
        get_now = getattr(store, "get_many_now", None)
        history_now = getattr(store, "history_now", None)
        self._get_now: _GetNow | None = None
        self._history_now: _HistoryNow | None = None
        if self.answers_at_once and callable(get_now) and callable(history_now):
            self._get_now = get_now
            self._history_now = history_now
        self.reads_now = self._get_now is not None
        # per user id, their fixed keys (profile, cart, erasure marker: a SHA-256, alias: read
        # in one round trip) and their history's key: the same user's requests come again
        # and again (bounded: any id may come)
        self._fixed: dict[str, tuple[tuple[str, ...], str]] = {}
        # the records' stored bytes -> their decoded form (frozen): a user's profile and cart
        # change rarely and are read on every request; equal bytes decode to equal records
        self._profiles: dict[bytes, Profile] = {}
        self._carts: dict[bytes, Cart] = {}

    def _user_keys(self, user_id: str) -> tuple[tuple[str, ...], str]:
        keys = self._fixed.get(user_id)
        if keys is None:
            found = [self._key(user_id, PROFILE_KEY), self._key(user_id, CART_KEY)]
            if self._erased is not None:
                found.append(self._erased(user_id))
            if self._alias is not None:
                found.append(self._alias(user_id))
            if len(self._fixed) >= _USERS:
                self._fixed.clear()
            keys = self._fixed[user_id] = (tuple(found), self._key(user_id, EVENTS_KEY))
        return keys

    async def forget(self, subjects: frozenset[str]) -> int:
        """Drop erased users' ids from the key cache and every decoded record (an erasure's
        in-memory holder); the records are those the store still holds or held, a copy, so
        nothing is counted."""
        for subject in subjects:
            self._fixed.pop(subject, None)
        self.empty_memo()
        return 0

    def empty_memo(self) -> None:
        """Drop the decoded records (not told apart by user: all of them)."""
        self._profiles.clear()
        self._carts.clear()

    async def records(self, user_id: str) -> tuple[Profile | None, Cart | None]:
        profile, cart, _ = await self.records_with_caps(user_id, 0.0)
        return profile, cart

    async def records_with_caps(
        self, user_id: str, now: float
    ) -> tuple[Profile | None, Cart | None, tuple[str, ...]]:
        """As :meth:`records`, and the names of the user's frequency caps reached at ``now``,
        read in the same round trip."""
        caps, keys = self._keys(user_id, now)
        return self._records(user_id, caps, await self._store.get_many(keys))

    def read_now(self, user_id: str, now: float, since: float) -> Read:
        """:meth:`records_with_caps` and :meth:`events`, one after the other, synchronously:
        only when ``reads_now`` (the store's reads are synchronous too)."""
        get_now = self._get_now
        history_now = self._history_now
        if get_now is None or history_now is None:
            raise TypeError("read_now needs a store with synchronous reads (reads_now)")
        caps, keys = self._keys(user_id, now)
        profile, cart, capped = self._records(user_id, caps, get_now(keys))
        events = history_now(self._user_keys(user_id)[1], since=since)
        return profile, cart, capped, self._events(events)

    def _keys(
        self, user_id: str, now: float
    ) -> tuple[Sequence[tuple[str, str, int]], tuple[str, ...]]:
        # the erasure marker, the alias and the cap counters in the same round trip
        caps = self._caps(user_id, now) if self._caps is not None and now else ()
        keys = self._user_keys(user_id)[0]
        if caps:
            keys = (*keys, *[key for _, key, _ in caps])
        return caps, keys

    def _records(
        self, user_id: str, caps: Sequence[tuple[str, str, int]], values: Sequence[bytes | None]
    ) -> tuple[Profile | None, Cart | None, tuple[str, ...]]:
        profile = values[0]
        cart = values[1]
        at = 2  # then the erasure marker, the alias, the cap counters: as _user_keys has them
        if self._erased is not None:
            if values[2] is not None:
                raise UserErased(user_id)
            at = 3
        if self._alias is not None:
            alias = values[at]
            if alias is not None:
                raise Aliased(alias.decode())
            at += 1
        capped: tuple[str, ...] = ()
        if caps:
            capped = tuple(
                name
                for (name, _, limit), count in zip(caps, values[at:], strict=True)
                if count is not None and int(count) >= limit
            )
        profile_record = None
        if profile is not None:
            profile_record = self._profiles.get(profile)
            if profile_record is None:
                profile_record = _decoded(self._profiles, profile, decode_profile)
        cart_record = None
        if cart is not None:
            cart_record = self._carts.get(cart)
            if cart_record is None:
                cart_record = _decoded(self._carts, cart, _CART.decode)
        return profile_record, cart_record, capped

    async def events(self, user_id: str, since: float) -> Sequence[Event]:
        key = self._user_keys(user_id)[1]
        return self._events(await self._store.history(key, since=since))

    def _events(self, items: Sequence[_HistoryItem]) -> Sequence[Event]:
        # the store's own items are Events (checked without a Python step per item): no copy
        if not items or set(map(type, items)) == _EVENT_ONLY:
            return items  # type: ignore[return-value]  # every one an Event, checked
        return [Event(item.event, item.at, item.data) for item in items]
