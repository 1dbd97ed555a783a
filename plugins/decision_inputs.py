"""A request's subject and decision contexts, from what gather found (:class:`Gathered`).

Apart from ``slotwise.plugins.gathered`` (a compiled module cannot define the Struct
``Gathered``) so that they run compiled: the personalisers read the subject once per request
and a context per ad unit, and as the Struct's property and method they were Python calls
(~2,500 instructions per request). ``Gathered.subject`` and ``Gathered.context`` are these.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from slotwise.types import ANONYMOUS, Context, SignalValue, Subject

if TYPE_CHECKING:
    from slotwise.plugins.gathered import Gathered


def request_subject(gathered: Gathered) -> Subject:
    """Who the request's decisions are for: nobody in particular without personal consent;
    known when the profile says the user is not new."""
    if not gathered.personal:
        return ANONYMOUS
    return Subject(gathered.user_id, "personal", gathered.signals.get("user.is_new") is False)


def decision_context(
    gathered: Gathered, now: float, extra: Mapping[str, SignalValue] | None = None
) -> Context:
    """The decision context: the request's signals (plus ``extra``, e.g. ``ad.*``), ``now``."""
    if not extra:
        return Context(gathered.signals, now, gathered.history)
    base = gathered.signals
    # mappingproxy.copy() copies the dict behind it at C speed; {**proxy} goes key by key
    signals = base.copy() if type(base) is MappingProxyType else dict(base)
    signals.update(extra)
    return Context(signals, now, gathered.history)
