"""A user's trigger states: what each trigger of the policy knows about one user, and why.

The truth is the user's event history (the collector's bounded ``history``, appended before an
event is acknowledged when a trigger listens to it). A trigger's state is a pure function of
that history and the time (:func:`derive`), by the same rules ``slotwise test`` evaluates
(``CompiledTrigger.due``):

- the *episode* is the latest ``on`` event (by event time); an older ``on`` event arriving late
  changes nothing, a newer one starts a new episode;
- it is *cancelled* when an ``unless`` event happened in ``[started, started + within)``,
  whenever that event arrives (before or after the ``on`` event, in any order);
- it is *waiting* until ``started + wait``, *armed* until ``started + window``, then *expired*.

Because the state is recomputed from the whole history, duplicate events (stored once: event
ids deduplicate) and out-of-order events give the same answer in any arrival order; clock skew
between proxies does not matter for the order either, since event times (the client's
``time``, else the receiving proxy's clock) order events, not arrival. The stored
:class:`TriggerRecord` (``subject_key(user, "triggers")``, erased with the user) is that
function's last result, kept for ``slotwise explain --user``, audiences and notifications.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Final

import msgspec

from slotwise.proxy.state import subject_key
from slotwise.proxy.state.history import StoredHistory

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledTrigger

RECORD: Final = "triggers"  # the per-user record's name (subject_key(user, RECORD))
WAITING: Final = "waiting"  # entered, `wait` not over yet
ARMED: Final = "armed"  # firing: its campaign is shown, its notification due
CANCELLED: Final = "cancelled"  # an `unless` event came within its window
EXPIRED: Final = "expired"  # `window` is over
ACTIVE: Final = frozenset({WAITING, ARMED})  # "in a trigger state" (audiences)
# the end of a trigger without `window`: JSON has no infinity (9999-12-31, what dates can say)
FOREVER: Final = 253_402_214_400.0


class TriggerState(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One trigger's episode for one user (times are seconds since the epoch)."""

    started: float  # the `on` event's time: the episode
    armed_at: float  # started + wait
    until: float  # started + window
    cancelled_at: float | None = None  # the `unless` event that cancelled the episode
    unless: str | None = None  # the trigger's `unless` event and window, as evaluated
    within: float = 0.0
    when: bool = True  # its `when` on the user's stored signals at the last evaluation
    notification: str | None = None  # the idempotency key of its notification, if enqueued

    def phase(self, now: float) -> str:
        """waiting, armed, cancelled or expired at ``now``."""
        if self.cancelled_at is not None:
            return CANCELLED
        if now > self.until:
            return EXPIRED
        return WAITING if now < self.armed_at else ARMED


class TriggerRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Every trigger state of one user, as last evaluated."""

    updated: float
    states: dict[str, TriggerState] = {}


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(TriggerRecord)


def record_key(subject: str) -> str:
    """The key of ``subject``'s trigger record (erased with the user)."""
    return subject_key(subject, RECORD)


def encode_record(record: TriggerRecord) -> bytes:
    return _encoder.encode(record)


def decode_record(data: bytes | None) -> TriggerRecord | None:
    """The record, or None when missing or unreadable (an unreadable one is rebuilt)."""
    if data is None:
        return None
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None


class Times(StoredHistory):
    """Event times by type from a history read once: the request path's history, and the
    earliest time of an event in a span (what cancels an episode)."""

    __slots__ = ()

    def first_in(self, event: str, low: float, high: float) -> float | None:
        """The earliest time of ``event`` in ``[low, high)``, or None."""
        series = self._times.get(event)
        if not series:
            return None
        i = bisect.bisect_left(series, low)
        return series[i] if i < len(series) and series[i] < high else None


def derive(trigger: CompiledTrigger, times: Times) -> TriggerState | None:
    """``trigger``'s episode for a user with these event times (None: never entered).

    ``when`` is left true here: it is evaluated against signals (see the engine).
    """
    started = times.last(trigger.on_event)
    if started is None:
        return None
    cancelled = None
    if trigger.unless_event is not None:
        cancelled = times.first_in(trigger.unless_event, started, started + trigger.unless_within)
    return TriggerState(
        started=started,
        armed_at=started + trigger.wait,
        until=started + trigger.window if math.isfinite(trigger.window) else FOREVER,
        cancelled_at=cancelled,
        unless=trigger.unless_event,
        within=trigger.unless_within,
    )


def listened(triggers: Iterable[CompiledTrigger]) -> frozenset[str]:
    """The event types some trigger enters on or is cancelled by."""
    names: set[str] = set()
    for trigger in triggers:
        names.add(trigger.on_event)
        if trigger.unless_event is not None:
            names.add(trigger.unless_event)
    return frozenset(names)


def active(record: TriggerRecord | None, now: float) -> Mapping[str, str]:
    """trigger name -> phase, for the triggers of ``record`` in a waiting or armed state."""
    if record is None:
        return {}
    return {
        name: phase
        for name, state in record.states.items()
        if (phase := state.phase(now)) in ACTIVE and state.when
    }
