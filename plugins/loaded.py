"""Providers as the request path uses them: built, configured, ordered, with their counters.

A :class:`ProviderSet` is created once at start-up by
:func:`slotwise.plugins.registry.load_providers` and never changes afterwards; the request path
only reads it. It knows which provider decides consent (the one declaring ``consent.level``),
which are contextual and personal, and in which order providers that read other providers'
signals must wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from slotwise.plugins.cache import TTLCache
from slotwise.plugins.contain import ProviderCrashed, consume, contained
from slotwise.plugins.errors import PluginError, PluginProblem
from slotwise.plugins.metrics import ProviderMetrics, render_prometheus
from slotwise.plugins.provider import Provider, ProviderServices
from slotwise.types import SignalSchema, SignalSpec, SignalType

log = logging.getLogger("slotwise.plugins")
CONSENT_SIGNAL = "consent.level"


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


@dataclass(frozen=True, slots=True)
class ProviderGroups:
    """The providers but the consent provider, grouped by what consent lets run."""

    with_consent: tuple[LoadedProvider, ...]  # personal consent: all of them
    contextual: tuple[LoadedProvider, ...]  # without it: the contextual ones
    personal: tuple[LoadedProvider, ...]  # the ones that do not run without it

    @classmethod
    def of(cls, providers: Sequence[LoadedProvider]) -> ProviderGroups:
        return cls(
            tuple(providers),
            tuple(p for p in providers if not p.personal),
            tuple(p for p in providers if p.personal),
        )


class ProviderSet:
    """The providers resolved at start-up, in dependency order, and their combined schema.

    ``start_timeout`` and ``close_timeout`` bound each provider's ``start`` and ``aclose``
    (seconds): a provider waiting for a server that never answers must not hold the start-up
    or the shutdown of the whole proxy.
    """

    start_timeout: float = 10.0
    close_timeout: float = 5.0

    def __init__(self, providers: Sequence[LoadedProvider], schema: SignalSchema) -> None:
        self.schema = schema
        self.providers = _in_dependency_order(providers)
        self.by_name: Mapping[str, LoadedProvider] = MappingProxyType(
            {p.name: p for p in self.providers}
        )
        gates = [p for p in self.providers if CONSENT_SIGNAL in p.specs]
        # The consent provider runs first and alone: its answer decides who runs next.
        self.consent: LoadedProvider | None = gates[0] if gates else None
        rest = [p for p in self.providers if p is not self.consent]
        self.everyone = ProviderGroups.of(rest)
        # for requests that carry no OpenRTB bid request (every request but an exchange's):
        # the providers that read nothing else (needs_bid_request) are left out
        self.without_bid_request = ProviderGroups.of([p for p in rest if not p.needs_bid_request])
        self.with_consent = self.everyone.with_consent
        self.contextual = self.everyone.contextual
        self.personal = self.everyone.personal
        self._started: list[LoadedProvider] = []

    async def start(self, services: ProviderServices | None = None) -> None:
        """Hand providers the app's ``services``, await every ``start`` (lifespan start-up).

        Each ``start`` gets :attr:`start_timeout` seconds. On the first failure the providers
        already started are closed again and a :class:`PluginError` (``provider_start``)
        names the provider.
        """
        try:
            for loaded in self.providers:
                loaded.provider.services = services or ProviderServices()
                failure = await _bounded(loaded.provider.start, self.start_timeout)
                if failure is not None:
                    raise PluginError([_start_problem(loaded.name, failure)])
                self._started.append(loaded)
                loaded.inline = _runs_inline(loaded)
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Await ``aclose`` of every started provider, in reverse order (lifespan shutdown).

        Each gets :attr:`close_timeout` seconds; one that fails or hangs is logged and the
        others are closed all the same.
        """
        while self._started:
            loaded = self._started.pop()
            failure = await _bounded(loaded.provider.aclose, self.close_timeout)
            if failure is not None:
                log.warning("provider %s: aclose() %s; closing the others", loaded.name, failure)

    def metrics(self) -> dict[str, dict[str, int | float]]:
        """A snapshot of every provider's counters, by provider name."""
        return {p.name: p.metrics.snapshot() for p in self.providers}

    def render_metrics(self) -> str:
        """The counters in the Prometheus text format, for ``/_sw/metrics``."""
        return render_prometheus({p.name: p.metrics for p in self.providers})

    def __iter__(self) -> Any:
        return iter(self.providers)

    def __len__(self) -> int:
        return len(self.providers)


async def _bounded(hook: Callable[[], Awaitable[None]], timeout: float) -> str | None:
    """Run a provider's ``start`` or ``aclose`` for at most ``timeout`` s: what went wrong, or None.

    In a task of its own, so that a hook ignoring cancellation is left behind rather than
    waited for; its escapes (``sys.exit``) are contained like a fetch's.
    """
    task = asyncio.ensure_future(contained(_call(hook)))
    try:
        await asyncio.wait([task], timeout=timeout)
    finally:
        if not task.done():  # timed out, or we are cancelled ourselves
            task.cancel()
            task.add_done_callback(consume)
    if not task.done():
        return f"did not finish within {timeout:g} s"
    if task.cancelled():
        return "was cancelled"
    error = task.exception()
    if error is None:
        return None
    if isinstance(error, ProviderCrashed):
        return str(error)  # "raised SystemExit(3)"
    return f"raised {type(error).__name__}: {error}"


async def _call(hook: Callable[[], Awaitable[None]]) -> None:
    # Called inside the task: a hook that raises before its first await (or is not even
    # async) is reported like any other failure.
    await hook()


def _runs_inline(loaded: LoadedProvider) -> bool:
    """The provider's answer to ``runs_inline()`` after its start (a raising one: a problem
    of its start, named like one)."""
    try:
        return loaded.provider.runs_inline() is True
    except Exception as error:
        problem = _start_problem(
            loaded.name, f"succeeded but runs_inline() raised {type(error).__name__}: {error}"
        )
        raise PluginError([problem]) from None


def _start_problem(name: str, failure: str) -> PluginProblem:
    return PluginProblem(
        "provider_start",
        name,
        f"start() {failure}; fix what it needs (its [plugins.{name}] table, a server, a file) "
        f"or add -{name} to SLOTWISE_PLUGINS to start without it",
    )


def _in_dependency_order(providers: Sequence[LoadedProvider]) -> tuple[LoadedProvider, ...]:
    """Order providers so each comes after those whose signals it reads; link ``needs``.

    Reads of signals no loaded provider declares are simply absent at run time. A cycle is
    broken by dropping the read that closes it (both then run without it): deadlock is worse.
    """
    producer: dict[str, LoadedProvider] = {}
    for p in providers:
        for name in p.specs:
            producer.setdefault(name, p)
    ordered: list[LoadedProvider] = []
    state: dict[int, str] = {}

    def visit(p: LoadedProvider) -> None:
        if state.get(id(p)) == "done":
            return
        state[id(p)] = "visiting"
        needs: list[LoadedProvider] = []
        for read in sorted(p.reads):
            dep = producer.get(read)
            if dep is None or dep is p or state.get(id(dep)) == "visiting":
                continue
            visit(dep)
            if dep not in needs:
                needs.append(dep)
        p.needs = tuple(needs)
        state[id(p)] = "done"
        ordered.append(p)

    for p in providers:
        visit(p)
    return tuple(ordered)
