"""The vocabulary every layer shares: ASGI aliases, typed signals and their context, the
goal a campaign optimises, how it explores, and who a decision is for.

This module imports nothing of slotwise's: the policy language (``slotwise.dsl``), the signal
providers (``slotwise.plugins``) and the runtime (``slotwise.proxy``) all import it, so none of
them has to import another for its types. ``slotwise.plugins.schema`` re-exports the signal
part for plugin authors.

Signals. A signal is named ``namespace.name`` (``device.type``, ``geo.country``). Values are one
of ``SignalValue``: strings, integers, floats, booleans, or a tuple of strings for list-valued
signals (``user.segments``). A signal that is absent for a request is simply missing from the
mapping; rules that need it do not match.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

# -- ASGI ------------------------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# -- signals ---------------------------------------------------------------------------------
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


# -- who a decision is for ---------------------------------------------------------------------

ConsentLevel = Literal["personal", "contextual"]


class Subject(NamedTuple):
    """Who one request's decisions are for.

    ``user_id`` is the pseudonymous id, set only with personal consent (without it nothing that
    identifies the user is used or stored); ``consent`` is the level the consent provider
    decided; ``known`` is False for a new user (no profile or history yet, or no consent).
    """

    user_id: str | None
    consent: ConsentLevel = "contextual"
    known: bool = False

    @property
    def personal(self) -> bool:
        return self.consent == "personal"


ANONYMOUS = Subject(None, "contextual", False)


def subject_of(user_id: str | None, personal: bool, known: bool = False) -> Subject:
    """The subject of a request: without personal consent, nobody in particular."""
    if not personal:
        return ANONYMOUS
    return Subject(user_id, "personal", known)


# -- what a campaign optimises and how it explores -----------------------------------------


@dataclass(frozen=True, slots=True)
class GoalTerm:
    metric: str  # clicks | conversions | revenue | discount_cost
    weight: float


@dataclass(frozen=True, slots=True)
class Goal:
    """The reward to maximise: a weighted sum, e.g. clicks + 10 * conversions."""

    terms: tuple[GoalTerm, ...]

    def reward(self, outcomes: Mapping[str, float]) -> float:
        """The goal's value for observed outcomes (missing metrics count as 0)."""
        return sum(term.weight * outcomes.get(term.metric, 0.0) for term in self.terms)

    def __str__(self) -> str:
        parts = []
        for i, term in enumerate(self.terms):
            weight = abs(term.weight)
            text = term.metric if weight == 1 else f"{_num(weight)} * {term.metric}"
            if i == 0:
                parts.append(("-" if term.weight < 0 else "") + text)
            else:
                parts.append(("- " if term.weight < 0 else "+ ") + text)
        return " ".join(parts)


DEFAULT_GOAL = Goal((GoalTerm("clicks", 1.0),))


@dataclass(frozen=True, slots=True)
class Explore:
    """How the bandit explores: kind (epsilon, squarecb, softmax, bag, cover, first) and its
    parameter (epsilon as a fraction: 5% is 0.05)."""

    kind: str
    parameter: float


DEFAULT_EXPLORE = Explore("epsilon", 0.05)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
