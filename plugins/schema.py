"""Typed signal schemas: what a provider yields and what the policy checker knows.

A signal is named ``namespace.name`` (``device.type``, ``geo.country``). Values are one of
``SignalValue``: strings, integers, floats, booleans, or a tuple of strings for list-valued
signals (``user.segments``). A signal that is absent for a request is simply missing from the
mapping; rules that need it do not match.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

SignalValue = str | int | float | bool | tuple[str, ...]
Signals = Mapping[str, SignalValue]


class SignalType(enum.Enum):
    STRING = "string"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    STRING_LIST = "list[string]"

    @property
    def is_numeric(self) -> bool:
        return self in (SignalType.INT, SignalType.FLOAT)


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """One signal a provider declares: its type, allowed values or range, and meaning."""

    name: str
    type: SignalType
    provider: str
    description: str
    values: frozenset[str] | None = None  # closed set of allowed strings, when there is one
    minimum: float | None = None
    maximum: float | None = None
    personal: bool = False  # needs the user's consent (profile, behaviour, identifiers)


@dataclass(frozen=True)
class SignalSchema:
    """The combined, immutable schema of every loaded provider, keyed by signal name."""

    specs: Mapping[str, SignalSpec] = field(default_factory=dict)

    def __contains__(self, name: object) -> bool:
        return name in self.specs

    def __iter__(self) -> Iterator[SignalSpec]:
        return iter(sorted(self.specs.values(), key=lambda s: s.name))

    def __len__(self) -> int:
        return len(self.specs)

    def get(self, name: str) -> SignalSpec | None:
        return self.specs.get(name)

    def merged(self, *specs: SignalSpec) -> SignalSchema:
        combined = dict(self.specs)
        for spec in specs:
            combined[spec.name] = spec
        return SignalSchema(combined)


class EventHistory(Protocol):
    """A user's recent behaviour, read by behavioural predicates (``event X within 7d``).

    Times are seconds since the epoch. Implementations are immutable snapshots taken for one
    request, so the evaluator can call them repeatedly without I/O.
    """

    def count(self, event: str, since: float) -> int:
        """How many events of this type happened at or after ``since``."""
        ...

    def last(self, event: str) -> float | None:
        """When the most recent event of this type happened, or None if never."""
        ...


class NoHistory:
    """The history of a user we know nothing about (new, or without consent)."""

    def count(self, event: str, since: float) -> int:
        return 0

    def last(self, event: str) -> float | None:
        return None


@dataclass(frozen=True, slots=True)
class Context:
    """Everything a decision reads about one request: signals, behaviour and the time."""

    signals: Signals
    now: float
    history: EventHistory = field(default_factory=NoHistory)


# The behavioural event types the pixel and SDK accept and policies can name
# (`on event add_to_cart`, `count of product_view within 24h >= 3`).
EVENT_TYPES: frozenset[str] = frozenset(
    {
        "impression",
        "click",
        "conversion",
        "page_view",
        "product_view",
        "add_to_cart",
        "remove_from_cart",
        "search",
        "price_check",
        "price_drop",
        "purchase",
        "session_start",
    }
)
