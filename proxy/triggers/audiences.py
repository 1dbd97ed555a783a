"""Audiences: the users currently in a trigger state (entered, not cancelled, not expired).

Each trigger keeps an index of the users who entered it (``audience_key``, a store set written
by the engine); listing reads each member's trigger record (in batches, one round trip each)
and keeps those whose state is waiting or armed now and whose ``when`` held on their stored
signals. Consent is respected because only personal-consent events enter a trigger; erased
users are absent (their record is erased, they leave the index, and their erasure marker is
checked too; a listing drops from the index the ids whose record expired or was erased).

The policy's named segments are audiences too, ``segment:NAME``: the users a personal event
was accepted for (``USERS_KEY``, kept by the engine while the policy names segments) whose
stored signals (the engine's ``stored_signals`` and history, as for a trigger's ``when``)
satisfy the segment at ``now``. A comparison on a signal only a request carries (device,
geo, page...) is false there, as a missing signal is. Ids with nothing stored any more
(profile, cart and history expired) or erased leave the index when listed.

``slotwise audiences`` and ``GET /_sw/admin/audiences/{name}`` read this.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from slotwise.proxy.state import Store
from slotwise.proxy.triggers.engine import USERS_KEY, audience_key, read_users
from slotwise.proxy.triggers.state import ACTIVE, decode_record, record_key

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledPolicySet

_BATCH = 500
SEGMENT: Final = "segment:"  # a segment audience's name is this and the segment's
HISTORY_SECONDS: Final = 30 * 86_400.0  # the history a segment's `event ... within` reads
TRIGGER_FIELDS: Final = ("user_id", "trigger", "phase", "started", "armed_at", "until")
SEGMENT_FIELDS: Final = ("user_id", "audience", "kind")


class UnknownAudience(KeyError):
    """No trigger or segment of that name in the policy."""


@dataclass(frozen=True, slots=True)
class Member:
    """One user in a trigger state."""

    user: str
    trigger: str
    phase: str  # waiting or armed
    started: float
    armed_at: float
    until: float

    def row(self) -> dict[str, object]:
        return {
            "user_id": self.user, "trigger": self.trigger, "phase": self.phase,
            "started": self.started, "armed_at": self.armed_at, "until": self.until,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class SegmentMember:
    """One user whose stored signals satisfy a segment."""

    user: str
    audience: str  # segment:NAME

    def row(self) -> dict[str, object]:
        return {"user_id": self.user, "audience": self.audience, "kind": "segment"}


def names(policy: CompiledPolicySet) -> list[str]:
    """The audiences there are: one per trigger of the policy, then one per segment."""
    return [trigger.name for trigger in policy.triggers] + [
        SEGMENT + segment.name for segment in policy.segments
    ]


def fields(name: str) -> tuple[str, ...]:
    """The columns of audience ``name``'s rows (a CSV export's header)."""
    return SEGMENT_FIELDS if name.startswith(SEGMENT) else TRIGGER_FIELDS


async def audience(
    store: Store, policy: CompiledPolicySet, name: str, *, now: float
) -> list[Member] | list[SegmentMember]:
    """The users in audience ``name`` at ``now`` (a trigger's state, or a segment), sorted
    by user id."""
    if name not in names(policy):
        raise UnknownAudience(name)
    if name.startswith(SEGMENT):
        return await _segment(store, policy, name, now=now)
    return await _trigger(store, name, now=now)


async def _segment(
    store: Store, policy: CompiledPolicySet, name: str, *, now: float
) -> list[SegmentMember]:
    from slotwise.proxy.events.erasure import erased_key

    segment = next(s for s in policy.segments if SEGMENT + s.name == name)
    users = sorted(m.decode() for m in await store.set_members(USERS_KEY))
    out: list[SegmentMember] = []
    for start in range(0, len(users), _BATCH):
        batch: Sequence[str] = users[start : start + _BATCH]
        stored = await read_users(store, batch, now, HISTORY_SECONDS)
        erased = await store.get_many([erased_key(u) for u in batch])
        stale = []
        for user, known, marker in zip(batch, stored, erased, strict=True):
            nothing = not known.history and known.profile is None
            if marker is not None or (nothing and not known.context.signals["cart.count"]):
                stale.append(user.encode())  # erased, or all they had expired
                continue
            try:
                holds = segment.holds(known.context)
            except Exception:  # a condition that cannot be evaluated here does not hold
                holds = False
            if holds:
                out.append(SegmentMember(user, name))
        if stale:
            await store.set_remove(USERS_KEY, *stale)
    return out


async def _trigger(store: Store, name: str, *, now: float) -> list[Member]:
    from slotwise.proxy.events.erasure import erased_key

    users = sorted(m.decode() for m in await store.set_members(audience_key(name)))
    out: list[Member] = []
    for start in range(0, len(users), _BATCH):
        batch: Sequence[str] = users[start : start + _BATCH]
        records = await store.get_many([record_key(u) for u in batch])
        erased = await store.get_many([erased_key(u) for u in batch])
        stale = []
        for user, raw, marker in zip(batch, records, erased, strict=True):
            record = decode_record(raw)
            state = record.states.get(name) if record is not None else None
            if state is None or marker is not None:
                stale.append(user.encode())  # expired or erased: its id leaves the index
                continue
            if not state.when:
                continue
            phase = state.phase(now)
            if phase in ACTIVE:
                out.append(Member(user, name, phase, state.started, state.armed_at, state.until))
        if stale:
            await store.set_remove(audience_key(name), *stale)
    return out
