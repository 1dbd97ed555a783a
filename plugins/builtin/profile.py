"""The ``profile`` provider: who the user is and what they did, with consent only.

Personal: :func:`~slotwise.plugins.gather.gather` runs it only when ``consent.level`` is
``personal``, and only then does it see the user id. It reads through the app's
:class:`~slotwise.plugins.profile_source.ProfileSource` (``services.profiles``, the state
store): the profile and cart records in one round trip and, concurrently, the user's event
history. Over a store whose reads never wait (``memory://``) the two reads run one after the
other inside the request's own task (``runs_inline``): no task, timer or wait per request; and
over one whose reads are synchronous too (``memory://``: the source's ``read_now``) gather takes
the answer from ``fetch_now``, without a coroutine.
The history feeds behavioural rules (``event add_to_cart within 2h``), counts visits
(``session_start``) when the profile does not, and rebuilds the cart when there is no cart
record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Final

from slotwise.plugins.builtin.configs import ProfileConfig
from slotwise.plugins.profile_source import (
    Aliased,
    Cart,
    Event,
    EventSnapshot,
    MemoryProfileSource,
    Profile,
    ProfileSource,
    Read,
    UserErased,
    cart_from_events,
)
from slotwise.plugins.provider import NOT_NOW, NotNow, Provider, WithHistory, signal
from slotwise.plugins.request import RequestInfo
from slotwise.types import SignalType, SignalValue

log = logging.getLogger("slotwise.plugins.profile")
_DAY: Final = 86_400.0
_Records = tuple[Profile | None, Cart | None, tuple[str, ...]]
_WithCaps = Callable[[str, float], Awaitable[_Records]]
_ReadNow = Callable[[str, float, float], Read]
# (profile, cart, caps reached, events) read, and the answer derived from them
_Derived = tuple[Profile | None, Cart | None, tuple[str, ...], list[Event], WithHistory]
_DERIVED_USERS = 4096  # users whose derived signals are kept (cleared when full)


class ProfileProvider(Provider[ProfileConfig]):
    """Demographics, segments, visits, cart and recent events of a consenting user."""

    name = "profile"
    config_type = ProfileConfig
    personal = True
    deadline = 0.03
    reuses_results = True  # a user's answer is reused while their records are unchanged
    signals = (
        signal("user.age", SignalType.INT, "Age in years, when known.", minimum=0, maximum=130),
        signal("user.gender", SignalType.STRING, "Gender as recorded in the profile."),
        signal("user.segments", SignalType.STRING_LIST, "Audience segments the user is in."),
        signal("user.is_new", SignalType.BOOL, "True until the user's second visit."),
        signal("user.visits", SignalType.INT, "Number of visits so far.", minimum=0),
        signal("cart.value", SignalType.FLOAT, "Cart total (site currency).", minimum=0),
        signal("cart.count", SignalType.INT, "Units in the cart.", minimum=0),
        signal("cart.items", SignalType.STRING_LIST, "Product ids in the cart."),
        signal(
            "user.capped",
            SignalType.STRING_LIST,
            "Frequency caps the user reached: campaign:NAME, trigger:NAME (`cap N per D`).",
        ),
        signal(
            "user.erased",
            SignalType.BOOL,
            "The user id was erased: the proxy treats the request as anonymous.",
        ),
    )

    def __init__(self, config: ProfileConfig) -> None:
        super().__init__(config)
        self._source: ProfileSource = MemoryProfileSource()
        self._at_once = True  # the source's reads never wait (see runs_inline)
        # the store's source reads the cap counters in the same read as the records
        self._with_caps: _WithCaps | None = None
        # the source's synchronous read (read_now), when it has one and reads never wait
        self._read_now: _ReadNow | None = None
        # per user: the records of the last read and what was derived from them (signals and
        # history snapshot). The same user's requests come again and again with the same
        # records; equal records give equal signals, so the snapshot, the cart rebuilt from
        # the events and the signals are made once per change, not once per request
        self._derived: dict[str, _Derived] = {}

    async def start(self) -> None:
        if self.services.profiles is None:
            log.warning(
                "profile: no profile source was given (ProviderSet.start(services=...)); "
                "user.* and cart.* signals stay empty until the app wires the state store"
            )
        else:
            self._source = self.services.profiles
        self._at_once = getattr(self._source, "answers_at_once", False) is True
        self._with_caps = getattr(self._source, "records_with_caps", None)
        reads_now = getattr(self._source, "reads_now", False) is True
        read_now = getattr(self._source, "read_now", None) if reads_now else None
        self._read_now = read_now if self._at_once and callable(read_now) else None

    def runs_inline(self) -> bool:
        """Over a source whose reads never wait (memory://), the whole fetch runs in the
        request's task: no task, deadline timer or wait per request. Over any other store the
        fetch is a task of its own, as an I/O provider's is."""
        return self._at_once

    def fetch_now(self, request: RequestInfo) -> Mapping[str, SignalValue] | WithHistory | NotNow:
        """``fetch``'s answer without a coroutine, over a source that reads synchronously
        (memory://: ``read_now``); ``NOT_NOW`` over any other (gather then runs ``fetch``).
        gather calls it only while the provider runs inline (``runs_inline``)."""
        read_now = self._read_now
        if read_now is None:
            return NOT_NOW
        user = request.user_id
        if user is None:
            return {}
        now = request.received_at
        since = now - self.config.history_days * _DAY
        for _ in range(2):  # as fetch: the id, then the known id identify() linked it to
            try:
                profile, cart, capped, events = read_now(user, now, since)
            except UserErased:
                self._derived.pop(user, None)
                return {"user.erased": True}
            except Aliased as link:
                user = link.user_id
                continue
            return self._answer(user, profile, cart, capped, events, since)
        return {}

    async def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue] | WithHistory:
        user = request.user_id
        if user is None:
            return {}
        for _ in range(2):  # the id, then the known id identify() linked it to
            try:
                return await self._read(user, request.received_at)
            except UserErased:  # nothing of theirs: the proxy drops (and rotates) the id
                self._derived.pop(user, None)  # nor kept here (another worker's erasure)
                return {"user.erased": True}
            except Aliased as link:
                user = link.user_id
        return {}  # a known id that is itself an alias: not followed further

    async def _records(self, user: str, now: float) -> _Records:
        with_caps = self._with_caps
        if with_caps is not None:
            return await with_caps(user, now)
        profile, cart = await self._source.records(user)
        return profile, cart, ()

    async def _both(
        self, user: str, now: float, since: float
    ) -> tuple[tuple[Profile | None, Cart | None, tuple[str, ...]], Sequence[Event]]:
        """Both reads at once, as asyncio.gather would, with one task instead of three."""
        reading = asyncio.ensure_future(self._source.events(user, since))
        try:
            records = await self._records(user, now)
        except BaseException:
            reading.cancel()
            if reading.done() and not reading.cancelled():
                reading.exception()  # retrieved: one failure is reported, not two
            raise
        return records, await reading

    async def _read(self, user: str, now: float) -> WithHistory:
        since = now - self.config.history_days * _DAY
        if self._at_once:  # nothing waits: one read after the other, no task
            source = self._source
            with_caps = self._with_caps
            if with_caps is not None:  # _records, inlined: one coroutine less per request
                profile, cart, capped = await with_caps(user, now)
            else:
                (profile, cart), capped = await source.records(user), ()
            events = await source.events(user, since)
        else:
            (profile, cart, capped), events = await self._both(user, now, since)
        return self._answer(user, profile, cart, capped, events, since)

    def _answer(
        self,
        user: str,
        profile: Profile | None,
        cart: Cart | None,
        capped: tuple[str, ...],
        events: Sequence[Event],
        since: float,
    ) -> WithHistory:
        """The answer to records and events read for ``user``, derived once per change."""
        # the same records as this user's last read: the same answer (the events are those
        # at or after ``since``, so a window that moved past one changes them too)
        known = self._derived.get(user)
        if (
            known is not None
            and known[0] == profile
            and known[1] == cart
            and known[2] == capped
            and known[3] == (events if type(events) is list else list(events))
        ):
            return known[4]
        answer = self._derive(profile, cart, capped, events, since)
        derived = self._derived
        if len(derived) >= _DERIVED_USERS:
            derived.clear()
        # a private copy: a source may hand out a list it changes later
        derived[user] = (profile, cart, capped, list(events), answer)
        return answer

    def empty_memo(self) -> None:
        """Drop every user's derived signals, and the source's decoded records (an erasure:
        slotwise.proxy.erased_request.empty_personal_caches)."""
        self._derived.clear()
        empty = getattr(self._source, "empty_memo", None)
        if callable(empty):
            empty()

    def _derive(
        self,
        profile: Profile | None,
        cart: Cart | None,
        capped: tuple[str, ...],
        events: Sequence[Event],
        since: float,
    ) -> WithHistory:
        history = EventSnapshot(events)
        if cart is None:
            cart = cart_from_events(events)
        out: dict[str, SignalValue] = {}
        visits = history.count("session_start", since)
        if profile is not None:
            visits = max(visits, profile.visits)
            if profile.age is not None:
                out["user.age"] = profile.age
            if profile.gender:
                out["user.gender"] = profile.gender
        out["user.visits"] = visits
        out["user.is_new"] = visits <= self.config.new_user_max_visits
        out["user.segments"] = tuple(profile.segments) if profile is not None else ()
        if capped:
            out["user.capped"] = capped
        if cart is not None:
            out["cart.value"] = float(cart.value)
            out["cart.count"] = cart.units
            out["cart.items"] = tuple(cart.items)
        else:
            out.update({"cart.value": 0.0, "cart.count": 0, "cart.items": ()})
        return WithHistory(out, history)
