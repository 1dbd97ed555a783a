"""The signal-provider interface every provider implements, built-in or third-party.

A provider is a class. Its class attributes declare what the registry needs without building
it (``name``, ``signals``, ``personal``, ``deadline``, ``ttl``, ``reads``, ``inline``,
``needs_bid_request``, ``config_type``), so
the policy checker can read the combined schema without configuring anything. At start-up the
registry validates the provider's configuration against ``config_type``, builds one instance
with it and awaits :meth:`Provider.start`; per request, :func:`slotwise.plugins.gather.gather`
awaits :meth:`Provider.fetch` under the provider's deadline; at shutdown it awaits
:meth:`Provider.aclose`.

The hooks, in the order they are called::

    config_type                      validated once at start-up (msgspec), before building
    __init__(config)                 once at start-up, with the validated config
    metrics                          its counters (misses, fallbacks); the registry's, once loaded
    services                         set by ProviderSet.start(services) just before start()
    async start()                    once at start-up, in the app lifespan: open files, clients
    cache_key(request)               per request, when ``ttl`` is set: key of the TTL cache
    async fetch(request)             per request: the signals, under ``deadline``
    async aclose()                   once at shutdown
"""

from __future__ import annotations

import abc
import re
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import msgspec

from slotwise.plugins.metrics import ProviderMetrics
from slotwise.plugins.profile_source import ProfileSource
from slotwise.plugins.request import RequestInfo
from slotwise.types import EventHistory, SignalSpec, SignalType, SignalValue

PROVIDER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
SIGNAL_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
# Bounds of ``deadline`` and ``ttl`` (seconds), also of ``deadline_ms`` and ``cache_ttl_s`` in a
# provider's config: a page never waits more than 10 s for a signal, and a cached answer older
# than a day is more likely a mistake than a plan.
MAX_DEADLINE = 10.0
MAX_TTL = 86_400.0


@dataclass(frozen=True, slots=True)
class Signal:
    """A signal as a provider declares it; the registry adds the provider's name and consent.

    ``values`` closes a string signal to a set of allowed values (the checker reports anything
    else); ``minimum``/``maximum`` bound a numeric one. ``problems`` notes what :func:`signal`
    could not keep (``values="rain"``); the registry reports it when the provider loads.
    """

    name: str
    type: SignalType
    description: str
    values: frozenset[str] | None = None
    minimum: float | None = None
    maximum: float | None = None
    problems: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def spec(self, provider: str, personal: bool) -> SignalSpec:
        """This declaration as the shared :class:`SignalSpec` of ``provider``."""
        return SignalSpec(
            name=self.name,
            type=self.type,
            provider=provider,
            description=self.description,
            values=self.values,
            minimum=self.minimum,
            maximum=self.maximum,
            personal=personal,
        )


def signal(
    name: str,
    type: SignalType,
    description: str,
    *,
    values: Iterable[str] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
) -> Signal:
    """Declare a signal: ``signal("weather.condition", SignalType.STRING, "...", values=[...])``.

    Malformed arguments do not raise here: this runs at import, where an error would not say
    which provider is wrong; the registry checks the declaration when the provider loads and
    reports it as ``provider_declaration`` naming the provider.
    """
    frozen, problem = _frozen_values(values)
    return Signal(
        name=name,
        type=type,
        description=description,
        values=frozen,
        minimum=minimum,
        maximum=maximum,
        problems=(problem,) if problem else (),
    )


def _frozen_values(values: object) -> tuple[frozenset[str] | None, str | None]:
    """``values`` as a frozenset, or why it cannot be one (a string would split into letters)."""
    if values is None:
        return None, None
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        return None, f"values must be a list of strings, not {values!r}"
    try:
        return frozenset(values), None
    except TypeError:  # unhashable items
        return None, f"values must be a list of strings, not {values!r}"


@dataclass(frozen=True, slots=True)
class ProviderServices:
    """Long-lived resources the app shares with providers (set before ``start``).

    ``profiles`` reads users' profiles, carts and events (the state store, wired by the app).
    """

    profiles: ProfileSource | None = None


@dataclass(frozen=True, slots=True)
class WithHistory:
    """What a personal provider's ``fetch`` may return to also give the user's recent events.

    ``history`` feeds behavioural rules (``event add_to_cart within 2h``); it is accepted only
    from personal providers and is never put in the TTL cache (the signals may be).
    """

    signals: Mapping[str, SignalValue]
    history: EventHistory


class NotNow:
    """The type of :data:`NOT_NOW`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_NOW"


#: What ``fetch_now`` returns when this request's answer needs waiting after all (the profile
#: provider over a source without synchronous reads): ``gather`` then runs ``fetch`` instead.
NOT_NOW = NotNow()


class NoConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The configuration of a provider that takes none: any key given is an error."""


ConfigT = TypeVar("ConfigT")


class Provider(abc.ABC, Generic[ConfigT]):
    """Base class of signal providers. Subclass it, set the class attributes, write ``fetch``.

    ``personal`` providers read who the user is (profile, behaviour) and run only with the
    user's consent; contextual ones see the request without identifiers. ``deadline`` (seconds)
    bounds every fetch: a late provider's signals are absent for that request. With ``ttl``
    (seconds), results are cached per :meth:`cache_key`. ``reads`` names signals of other
    providers this one needs; they arrive in ``request.signals``. Operators may override
    ``deadline`` and ``ttl`` per provider with ``deadline_ms`` and ``cache_ttl_s`` in its config.
    A provider with ``reuses_results`` promises that a result object it returns again is
    unchanged (its validated signals are then reused). A provider with ``needs_bid_request``
    reads nothing but the OpenRTB bid request
    (``request.bid_request``): it does not run for requests that carry none (it does for a body
    that names ``imp`` but could not be read, ``request.body.problem``).
    ``metrics`` are its counters in ``/_sw/metrics``: a provider that answers from a fallback
    because its input was unusable counts it with ``self.metrics.fallback(cause)``.
    """

    name: ClassVar[str]
    signals: ClassVar[tuple[Signal, ...]]
    personal: ClassVar[bool] = False
    deadline: ClassVar[float] = 0.05
    ttl: ClassVar[float | None] = None
    reads: ClassVar[frozenset[str]] = frozenset()
    inline: ClassVar[bool] = False
    needs_bid_request: ClassVar[bool] = False
    # True: a result ``fetch`` returns again (the very same object, e.g. from a memo of its
    # own) is unchanged since it was first returned, so gather validates it once
    reuses_results: ClassVar[bool] = False
    config_type: ClassVar[type[Any]] = NoConfig

    metrics: ProviderMetrics

    def __init__(self, config: ConfigT) -> None:
        self.config = config
        self.services = ProviderServices()
        self.metrics = ProviderMetrics()

    @classmethod
    def schema(cls) -> tuple[SignalSpec, ...]:
        """The signals this provider declares, as shared specs naming it."""
        return tuple(s.spec(cls.name, cls.personal) for s in cls.signals)

    async def start(self) -> None:
        """Called once at start-up, after ``__init__``: open databases, clients, warm caches.

        ``self.services`` holds the app's shared resources by then.
        """

    async def aclose(self) -> None:
        """Called once at shutdown: release what ``start`` opened."""

    def runs_inline(self) -> bool:
        """Whether ``fetch`` does no I/O, asked once after :meth:`start` (``inline`` unless a
        provider knows better then: the profile provider over a store whose reads never wait)."""
        return self.inline

    def cache_key(self, request: RequestInfo) -> Hashable | None:
        """The TTL-cache key of a request (``None``: do not cache this one). Needs ``ttl``."""
        return None

    @abc.abstractmethod
    async def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue] | WithHistory:
        """The signals for one request. Leave out what you do not know; never block the loop.

        Personal providers may return :class:`WithHistory` to add the user's recent events.
        """
