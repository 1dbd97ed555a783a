"""Audiences: the users currently in a trigger state (entered, not cancelled, not expired).

Each trigger keeps an index of the users who entered it (``audience_key``, a store set written
by the engine); listing reads each member's trigger record (in batches, one round trip each)
and keeps those whose state is waiting or armed now and whose ``when`` held on their stored
signals. Consent is respected because only personal-consent events enter a trigger; erased
users are absent (their record is erased, they leave the index, and their erasure marker is
checked too; a listing drops from the index the ids whose record expired or was erased).
``slotwise audiences`` and ``GET /_sw/admin/audiences/{name}`` read this.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from slotwise.proxy.state import Store
from slotwise.proxy.triggers.engine import audience_key
from slotwise.proxy.triggers.state import ACTIVE, decode_record, record_key

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledPolicySet

_BATCH = 500


class UnknownAudience(KeyError):
    """No trigger of that name in the policy."""


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


def names(policy: CompiledPolicySet) -> list[str]:
    """The audiences there are: one per trigger of the policy."""
    return [trigger.name for trigger in policy.triggers]


async def audience(
    store: Store, policy: CompiledPolicySet, name: str, *, now: float
) -> list[Member]:
    """The users in trigger ``name``'s state at ``now``, sorted by user id."""
    if name not in names(policy):
        raise UnknownAudience(name)
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
