"""A provider as the request path reads it: built, with its deadline, TTL, cache, counters
and the specs gather validates against.

Compiled (slotwise/native.py): gather reads several of its fields per provider per request,
which compiled code reads directly from a compiled class and through Python attribute calls
from an interpreted one. The rest of the provider machinery (:class:`ProviderSet`, start-up
and shutdown) lives in :mod:`slotwise.plugins.loaded`, which re-exports this class.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from slotwise.plugins.cache import TTLCache
from slotwise.plugins.metrics import ProviderMetrics
from slotwise.plugins.provider import Provider
from slotwise.types import SignalSpec, SignalType


@dataclass(eq=False, slots=True)
class LoadedProvider:
    """One built provider with its effective deadline and TTL, cache, counters and specs."""

    provider: Provider[Any]
    name: str
    personal: bool
    deadline: float
    ttl: float | None
    specs: Mapping[str, SignalSpec]
    reads: frozenset[str]
    inline: bool
    cache: TTLCache | None
    needs_bid_request: bool = False
    metrics: ProviderMetrics = field(default_factory=ProviderMetrics)
    # Providers whose signals this one reads; filled in by ProviderSet.
    needs: tuple[LoadedProvider, ...] = ()
    # Cache misses being fetched now, shared by concurrent requests for the same key.
    inflight: dict[Hashable, asyncio.Task[Any]] = field(default_factory=dict)
    # Whether a failure has been logged at warning level yet (later ones log at debug).
    warned: bool = False
    # What gather's validation reads per signal, per request: ``specs`` as a plain dict (a
    # mappingproxy's .get is a method call through its wrapper), and the names whose values
    # need no check beyond their exact type (an unconstrained string, a bool, an unbounded
    # int), each with that type.
    checks: dict[str, SignalSpec] = field(init=False, repr=False)
    exact: dict[str, type] = field(init=False, repr=False)
    # The provider's synchronous fetch, when its fetch is nothing but that (the built-in
    # providers that never wait): gather calls it while ``inline``, without a coroutine.
    fetch_now: Callable[[Any], object] | None = field(init=False, repr=False)
    # With ``Provider.reuses_results``: a result's id -> (the result, its validated signals,
    # the values dropped, the history accepted); the result is held, so its id is not reused
    # while it is here
    validated: dict[int, tuple[object, Mapping[str, Any], int, Any]] | None = field(
        init=False, repr=False
    )

    def __post_init__(self) -> None:
        self.fetch_now = _synchronous_fetch(self.provider)
        self.validated = {} if getattr(self.provider, "reuses_results", False) is True else None
        self.checks = dict(self.specs)
        self.exact = {
            name: kind
            for name, spec in self.checks.items()
            if (kind := _exact_type(spec)) is not None
        }

    @classmethod
    def build(
        cls, provider: Provider[Any], *, deadline: float, ttl: float | None
    ) -> LoadedProvider:
        kind = type(provider)
        # one set of counters: what gather counts and what the provider counts itself
        metrics = getattr(provider, "metrics", None)
        if not isinstance(metrics, ProviderMetrics):  # an __init__ that skipped super()'s
            metrics = ProviderMetrics()
            provider.metrics = metrics
        return cls(
            provider=provider,
            name=kind.name,
            personal=kind.personal,
            deadline=deadline,
            ttl=ttl,
            specs=MappingProxyType({spec.name: spec for spec in kind.schema()}),
            reads=frozenset(kind.reads),
            inline=kind.inline,
            cache=TTLCache(ttl) if ttl else None,
            needs_bid_request=kind.needs_bid_request,
            metrics=metrics,
        )


def _synchronous_fetch(provider: Provider[Any]) -> Callable[[Any], object] | None:
    """``provider.fetch_now`` when the class whose ``fetch`` the provider uses defines
    ``fetch_now`` beside it (its fetch then only returns ``fetch_now``'s answer); else None
    (a subclass overriding ``fetch``, a fetch set on the instance, any other provider)."""
    if "fetch" in getattr(provider, "__dict__", {}):
        return None
    for klass in type(provider).__mro__:
        if "fetch" in vars(klass):
            now = vars(klass).get("fetch_now")
            return getattr(provider, "fetch_now") if callable(now) else None  # noqa: B009
    return None


def _exact_type(spec: SignalSpec) -> type | None:
    """The type whose every value (that type exactly, not a subclass) is valid for ``spec``,
    or None when values need a closer look (allowed values, a range, a list's items)."""
    if spec.type is SignalType.STRING and spec.values is None:
        return str
    if spec.type is SignalType.BOOL:
        return bool
    if spec.type is SignalType.INT and spec.minimum is None and spec.maximum is None:
        return int
    return None
