"""Typed signal schemas: what a provider yields and what the policy checker knows.

The types are defined once, in :mod:`slotwise.types` (the vocabulary every layer shares); this
module is where plugin authors import them from (``from slotwise.types import ...``).
"""

from slotwise.types import (
    EVENT_TYPES,
    Context,
    EventHistory,
    NoHistory,
    Signals,
    SignalSchema,
    SignalSpec,
    SignalType,
    SignalValue,
)

__all__ = [
    "EVENT_TYPES",
    "Context",
    "EventHistory",
    "NoHistory",
    "SignalSchema",
    "SignalSpec",
    "SignalType",
    "SignalValue",
    "Signals",
]
