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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from slotwise.plugins.contain import ProviderCrashed, consume, contained
from slotwise.plugins.errors import PluginError, PluginProblem
from slotwise.plugins.loaded_provider import LoadedProvider as LoadedProvider
from slotwise.plugins.metrics import render_prometheus
from slotwise.plugins.provider import ProviderServices
from slotwise.types import SignalSchema

log = logging.getLogger("slotwise.plugins")
CONSENT_SIGNAL = "consent.level"


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
