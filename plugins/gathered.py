"""What :func:`slotwise.plugins.gather.gather` returns for one request: :class:`Gathered`.

Apart from ``gather`` (compiled with mypyc) because a compiled module cannot define a
``msgspec.Struct``, and one ``Gathered`` is built per request: a frozen dataclass's generated
``__init__`` (``object.__setattr__`` per field, in Python even when compiled) cost ~5,300
instructions; the Struct's is C. ``slotwise.plugins.gather`` re-exports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec

from slotwise.plugins.decision_inputs import decision_context, request_subject
from slotwise.types import Context, EventHistory, NoHistory, Signals, SignalValue, Subject

NO_HISTORY: Final = NoHistory()


class Gathered(msgspec.Struct, frozen=True):
    """The signals of one request and what consent allows the rest of the request to use.

    ``personal`` is True only with personal consent; ``user_id`` is the request's user id then,
    else None (do not read it from anywhere else). ``history`` is the user's recent events
    (empty without consent). Change one with ``msgspec.structs.replace``.
    """

    signals: Signals
    personal: bool
    user_id: str | None
    history: EventHistory = NO_HISTORY

    @property
    def subject(self) -> Subject:
        """Who the request's decisions are for (known: the profile says not new)."""
        return request_subject(self)

    def context(self, now: float, extra: Mapping[str, SignalValue] | None = None) -> Context:
        """The decision context: these signals (plus ``extra``, e.g. ``ad.*``), ``now``."""
        return decision_context(self, now, extra)


__all__ = ["NO_HISTORY", "Gathered"]
