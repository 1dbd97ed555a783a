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
import math
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, Protocol

import msgspec

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


class Context(msgspec.Struct, frozen=True):
    """Everything a decision reads about one request: signals, behaviour and the time.

    A frozen Struct, not a frozen dataclass: one is built per ad unit of every personalised
    request, and a dataclass's generated ``__init__`` (``object.__setattr__`` per field, in
    Python) costs ~4,000 instructions; the Struct's is C."""

    signals: Signals
    now: float
    history: EventHistory = msgspec.field(default_factory=NoHistory)


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


# -- what a campaign optimises and how it explores -----------------------------------------

# The outcomes a goal can weigh: what the reward join totals for a decision inside its window.
GOAL_METRICS: tuple[str, ...] = ("clicks", "conversions", "revenue", "discount_cost", "margin")


@dataclass(frozen=True, slots=True)
class GoalTerm:
    metric: str  # one of GOAL_METRICS
    weight: float


@dataclass(frozen=True, slots=True)
class Goal:
    """The reward to maximise: a weighted sum of outcomes, e.g. clicks + 10 * conversions.

    The policy's ``optimize`` compiles to one; ``Goal.of({"clicks": 1, "conversions": 10})``
    builds one from weights (scenarios, ``slotwise evaluate --goal``). A metric outside
    ``GOAL_METRICS`` is a ValueError naming it; callers with their own error codes wrap it.
    """

    terms: tuple[GoalTerm, ...]

    def __post_init__(self) -> None:
        unknown = sorted({term.metric for term in self.terms} - set(GOAL_METRICS))
        if unknown:
            raise ValueError(
                f"unknown goal term(s) {', '.join(unknown)}; use {', '.join(GOAL_METRICS)}"
            )

    @classmethod
    def of(cls, weights: Mapping[str, float]) -> Goal:
        """The goal weighing each metric by its weight, in the mapping's order."""
        return cls(tuple(GoalTerm(metric, float(weight)) for metric, weight in weights.items()))

    @property
    def weights(self) -> dict[str, float]:
        """Metric -> total weight."""
        combined: dict[str, float] = {}
        for term in self.terms:
            combined[term.metric] = combined.get(term.metric, 0.0) + term.weight
        return combined

    def reward(self, outcome: Mapping[str, float]) -> float:
        """The goal's value for one decision's outcome (a metric missing from it counts 0)."""
        return sum(term.weight * outcome.get(term.metric, 0.0) for term in self.terms)

    def __str__(self) -> str:
        """The goal as the policy language writes it (``clicks + 10 * conversions``)."""
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

# Exploration kinds and the parameter each takes when the policy names none.
EXPLORE_KINDS: Mapping[str, float] = MappingProxyType(
    {
        "epsilon": 0.05,  # a share: 5%
        "squarecb": 10.0,  # gamma scale
        "softmax": 1.0,  # lambda (inverse temperature)
        "bag": 5.0,  # policies
        "cover": 3.0,  # policies
        "first": 10.0,  # decisions explored uniformly before going greedy
        "greedy": 0.0,  # no exploration: no parameter
    }
)


@dataclass(frozen=True, slots=True)
class Explore:
    """How a campaign explores: a kind from ``EXPLORE_KINDS`` and its parameter (epsilon as a
    share: 5% is 0.05).

    A plain value: the policy checker, the scenarios and the bandit each refuse a bad one with
    their own error, from the one rule in :meth:`problem`. How a kind maps to Vowpal Wabbit
    options is the bandit's business (``slotwise.proxy.bandit.exploration``).
    """

    kind: str
    parameter: float

    @classmethod
    def of(cls, kind: str | None = None, parameter: float | None = None) -> Explore:
        """The exploration a clause names: no kind is epsilon 5%, no parameter the kind's
        default (greedy takes none; an unknown kind gets 0, which :meth:`problem` refuses)."""
        if kind is None:
            return DEFAULT_EXPLORE
        if kind == "greedy":
            return cls("greedy", 0.0)
        if parameter is None:
            return cls(kind, EXPLORE_KINDS.get(kind, 0.0))
        return cls(kind, float(parameter))

    def problem(self) -> str | None:
        """What makes this exploration unusable, or None."""
        kind, value = self.kind, self.parameter
        if kind not in EXPLORE_KINDS:
            return f"unknown exploration {kind!r}; use one of: {', '.join(EXPLORE_KINDS)}"
        if not math.isfinite(value):  # every check below would pass nan, or crash on it
            return f"the parameter must be a number, got {value}"
        if kind == "epsilon" and not 0.0 <= value <= 1.0:
            return f"epsilon must be in 0..1 (a share), got {value}"
        if kind in ("squarecb", "softmax") and value <= 0:
            return f"{kind} needs a positive parameter, got {value}"
        whole = value == int(value)
        if kind in ("bag", "cover") and (value < 2 or not whole):
            return f"{kind} needs a whole number of policies >= 2, got {value}"
        if kind == "first" and (value < 1 or not whole):
            return f"first needs a whole number of decisions >= 1, got {value}"
        return None


DEFAULT_EXPLORE = Explore("epsilon", 0.05)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
