"""Per request: run the resolved providers, each under its deadline, and merge their signals.

This is the only plugin code on the request path. :func:`gather` runs the consent provider
first (alone: its answer decides who runs next), then every other allowed provider
concurrently, a provider that ``reads`` another's signals right after that one. A provider
that is late, raises, or returns values that do not match its declared schema contributes no
(such) signals, and the miss is counted in its :class:`~slotwise.plugins.metrics.ProviderMetrics`;
``gather`` itself never raises because of a provider.

Without personal consent, personal providers do not run and the others see
:meth:`RequestInfo.without_identifiers`; :attr:`Gathered.user_id` is then ``None``, so nothing
downstream can store or log the user's identifier.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Hashable, Mapping, Sequence
from math import isfinite
from types import MappingProxyType
from typing import Any, Final, TypeGuard

from slotwise.plugins import eager
from slotwise.plugins.contain import consume, contained

# Gathered lives in a pure module (a compiled one cannot define a msgspec Struct); re-exported
from slotwise.plugins.gathered import NO_HISTORY
from slotwise.plugins.gathered import Gathered as Gathered
from slotwise.plugins.loaded import CONSENT_SIGNAL, LoadedProvider, ProviderSet
from slotwise.plugins.profile_source import EventSnapshot
from slotwise.plugins.provider import NOT_NOW, WithHistory
from slotwise.plugins.request import NO_BODY, RequestInfo
from slotwise.types import (
    EventHistory,
    Signals,
    SignalSpec,
    SignalType,
    SignalValue,
)

log = logging.getLogger("slotwise.plugins")
# Final, as the constants below: compiled, a constant read, not a module dict lookup per use
_EMPTY: Final[Signals] = MappingProxyType({})
# A late fetch of a cacheable provider may run on for this many deadlines to warm its cache.
LATE_FACTOR: Final = 20
# The event a returned history is asked about once, to know it answers at all.
_PROBE_EVENT: Final = "page_view"


async def gather(
    providers: ProviderSet, request: RequestInfo, *, budget: float | None = None
) -> Gathered:
    """Run the providers for ``request`` and merge their signals.

    Takes at most about the slowest provider's deadline, and never more than ``budget``
    seconds when given: providers still running then are given up (counted as ``timeout``)
    and the signals that did arrive are returned. Prefer ``budget`` to cancelling ``gather``
    from outside, which loses every signal of the request.
    """
    loop = asyncio.get_running_loop()
    give_up_at = None if budget is None else loop.time() + budget
    signals: dict[str, SignalValue] = {}
    gate = providers.consent
    if gate is not None:
        first = _begin(gate, request, [], loop)
        signals.update(await first if isinstance(first, asyncio.Future) else first)
    personal = signals.get(CONSENT_SIGNAL) == "personal"
    # no bid request, nor a broken one (every request but an exchange's): the providers that
    # read only bid requests do not run at all
    body = request.body
    plain = body is NO_BODY or (body.bid_request is None and body.problem is None)
    groups = providers.without_bid_request if plain else providers.everyone
    if personal:
        view = request
        running = groups.with_consent
    else:
        # Fail closed: no consent provider, or a late or failing one, means contextual.
        view = request.without_identifiers()
        running = groups.contextual
        for skipped in groups.personal:
            skipped.metrics.misses["no_consent"] += 1

    # Providers that never wait (most built-ins) finish inside _begin, on the caller's stack
    # with no coroutine or task of their own; the others run as tasks, all concurrently, each
    # watched by a future that settles with its signals (or none) by its deadline.
    # Dependency order: producers before their readers.
    done: dict[LoadedProvider, Signals] = {}
    pending: dict[LoadedProvider, asyncio.Future[Signals]] = {}
    histories: list[EventHistory] = []  # filled by personal providers returning WithHistory
    watched = True  # every pending future is a _watch, settled by its provider's deadline
    for loaded in running:
        needs = loaded.needs
        waits = [pending[dep] for dep in needs if dep in pending] if needs else None
        if waits:
            ready = [done[dep] for dep in needs if dep in done]
            outcome = eager.start(_after(loaded, view, waits, [signals, *ready], histories))
            if isinstance(outcome, eager.Done):
                done[loaded] = outcome.value if outcome.error is None else _EMPTY
            else:
                pending[loaded] = outcome
                watched = False
            continue
        if loaded.reads:
            produced = [signals, *(done[dep] for dep in needs if dep in done)]
            result = _begin(loaded, _reading(loaded, view, produced), histories, loop)
        else:
            result = _begin(loaded, view, histories, loop)
        if isinstance(result, asyncio.Future):
            pending[loaded] = result
        else:
            done[loaded] = result
    if pending:
        try:
            if watched and _settle_in_time(pending, loop, give_up_at):
                for future in pending.values():  # each settles by its deadline, never fails
                    await future
            else:
                await asyncio.wait(pending.values(), timeout=_remaining(loop, give_up_at))
        except asyncio.CancelledError:
            _give_up(pending)
            raise
        _give_up(pending)
        for loaded, task in pending.items():
            failed = not task.done() or task.cancelled() or task.exception() is not None
            done[loaded] = _EMPTY if failed else task.result()
    for loaded in running:  # merge in a fixed order, whatever finished first
        signals.update(done[loaded])
    # Copied: a provider given up on may still add its history later, to the list only.
    found = list(histories)
    history: EventHistory = (
        found[0] if len(found) == 1 else _Combined(found) if found else NO_HISTORY
    )
    return Gathered(
        signals=MappingProxyType(signals),
        personal=personal,
        user_id=request.user_id if personal else None,
        history=history,
    )


def _settle_in_time(
    pending: Mapping[LoadedProvider, asyncio.Future[Signals]],
    loop: asyncio.AbstractEventLoop,
    give_up_at: float | None,
) -> bool:
    """Whether every pending provider's deadline ends within the budget: then awaiting their
    futures in turn takes no longer than ``asyncio.wait`` under the budget would, without its
    future, callbacks and timer per request."""
    if give_up_at is None:
        return True
    left = give_up_at - loop.time()  # each deadline started before now
    return all(loaded.deadline <= left for loaded in pending)


def _remaining(loop: asyncio.AbstractEventLoop, give_up_at: float | None) -> float | None:
    return None if give_up_at is None else max(0.0, give_up_at - loop.time())


def _give_up(pending: Mapping[LoadedProvider, asyncio.Future[Signals]]) -> None:
    """Stop waiting for providers still running (the request's budget ran out, or the request
    was cancelled: that cancels an awaited future too, which counts the same)."""
    for loaded, waiting in pending.items():
        if not waiting.done():
            waiting.cancel()  # its watcher abandons the fetch
            _failed(loaded, "timeout", None)
        elif waiting.cancelled():
            _failed(loaded, "timeout", None)


async def _after(
    loaded: LoadedProvider,
    request: RequestInfo,
    waits: Sequence[asyncio.Future[Signals]],
    produced: list[Signals],
    histories: list[EventHistory],
) -> Signals:
    # Each awaited provider is bounded by its own deadline, so this wait is too.
    await asyncio.wait(waits)
    produced.extend(_EMPTY if task.cancelled() else task.result() for task in waits)
    return await _fetch(loaded, _reading(loaded, request, produced), histories)


def _reading(
    loaded: LoadedProvider, request: RequestInfo, produced: Sequence[Signals]
) -> RequestInfo:
    seen: dict[str, SignalValue] = {}
    reads = loaded.reads
    for signals in produced:
        # a provider reads few signals: look those up rather than scan every signal
        for name in reads:
            if name in signals:
                seen[name] = signals[name]
    if not seen and not request.signals:  # nothing it reads was produced (the clock without
        return request  # a geo.timezone): the request as it is, not a copy with no signals
    return request.with_signals(seen)


async def _fetch(
    loaded: LoadedProvider, request: RequestInfo, histories: list[EventHistory]
) -> Signals:
    """One provider's signals, from its cache or a fetch under its deadline; never raises.

    A personal provider's history (``WithHistory``) is appended to ``histories``.
    """
    result = _begin(loaded, request, histories, asyncio.get_running_loop())
    return await result if isinstance(result, asyncio.Future) else result


def _begin(
    loaded: LoadedProvider,
    request: RequestInfo,
    histories: list[EventHistory],
    loop: asyncio.AbstractEventLoop,
) -> Signals | asyncio.Future[Signals]:
    """``_fetch`` up to its first wait: the signals when that needs none (cache hit, inline
    provider that did not suspend), else a future of them (see ``_watch``; never failing).

    Most requests touch only inline providers: doing their whole fetch here, without a
    coroutine, ``Done`` or task per provider, is most of what gather saves.
    """
    metrics = loaded.metrics
    metrics.fetches += 1
    started = loop.time()
    key: Hashable | None = None
    try:
        if loaded.cache is not None:
            key = loaded.provider.cache_key(request)
            if key is not None:
                hit = loaded.cache.get(key, started)
                if hit is not None:
                    metrics.cache_hits += 1
                    metrics.ok += 1
                    return hit
        task: asyncio.Task[Any] | None = loaded.inflight.get(key) if key is not None else None
        owner = task is None
        if task is None:
            if loaded.inline:
                now_fetch = loaded.fetch_now
                coro = None
                try:
                    # a built-in that answers without waiting: no coroutine (and no
                    # StopIteration raised and caught to end one)
                    raw = now_fetch(request) if now_fetch is not None else NOT_NOW
                    if raw is NOT_NOW:  # eager.start, inlined: step the fetch once; it
                        coro = loaded.provider.fetch(request)  # usually ends here
                        yielded = coro.send(None)
                except StopIteration as stop:
                    raw, coro = stop.value, None
                except BaseException as exc:  # sys.exit() or a CancelledError of its own too
                    metrics.seconds += loop.time() - started
                    return _failed(loaded, "error", exc)
                if coro is None:  # answered at once
                    now = loop.time()
                    metrics.seconds += now - started
                    values = _validated(loaded, raw, histories)
                    if key is None:
                        metrics.ok += 1
                        return values
                    return _succeeded(loaded, key, values, now)
                # the rest in a task, whose escapes must not stop the event loop
                task = asyncio.ensure_future(contained(eager._resume(coro, yielded)))
            else:
                task = asyncio.ensure_future(contained(loaded.provider.fetch(request)))
            if key is not None:
                loaded.inflight[key] = task
                task.add_done_callback(functools.partial(_forget, loaded.inflight, key))
    except BaseException as exc:  # e.g. a raising cache_key: the provider's, not the request's
        return _failed(loaded, "error", exc)
    return _watch(loaded, key, task, owner, started, histories, loop)


def _watch(
    loaded: LoadedProvider,
    key: Hashable | None,
    task: asyncio.Task[Any],
    owner: bool,
    started: float,
    histories: list[EventHistory],
    loop: asyncio.AbstractEventLoop,
) -> asyncio.Future[Signals]:
    """A future of the fetch's validated signals, settled by the fetch or by its deadline.

    Callbacks and one timer instead of a task waiting on the fetch: a provider that does I/O
    costs one task per request, not two and an ``asyncio.wait``. The future never fails: a
    late, failing or invalid fetch settles it with no signals (counted). Cancelling it (the
    request's budget ran out, or the request is gone) abandons the fetch as a timeout would.
    """
    metrics = loaded.metrics
    watching: asyncio.Future[Signals] = loop.create_future()

    def finished(done: asyncio.Task[Any]) -> None:
        if watching.done():
            return
        metrics.seconds += loop.time() - started
        if done.cancelled():
            watching.set_result(_failed(loaded, "timeout", None))
            return
        error = done.exception()
        if error is not None:
            watching.set_result(_failed(loaded, "error", error))
            return
        try:
            values = _validated(loaded, done.result(), histories)
        except BaseException as exc:  # the provider's mapping raising, even sys.exit()
            watching.set_result(_failed(loaded, "error", exc))
            return
        watching.set_result(_succeeded(loaded, key, values, loop.time()))

    def expired() -> None:
        if watching.done():
            return
        metrics.seconds += loop.time() - started
        if owner:
            _abandon(loaded, key, task)
        watching.set_result(_failed(loaded, "timeout", None))

    timer = loop.call_later(loaded.deadline, expired)

    def settled(_: asyncio.Future[Signals]) -> None:
        timer.cancel()
        task.remove_done_callback(finished)  # a shared in-flight fetch may outlive this request
        if watching.cancelled() and owner and not task.done():
            _abandon(loaded, key, task)

    task.add_done_callback(finished)
    watching.add_done_callback(settled)
    return watching


def _succeeded(
    loaded: LoadedProvider, key: Hashable | None, values: Signals, now: float
) -> Signals:
    if loaded.cache is not None and key is not None:
        loaded.cache.put(key, values, now)
    loaded.metrics.ok += 1
    return values


def _abandon(loaded: LoadedProvider, key: Hashable | None, task: asyncio.Task[Any]) -> None:
    """Give up waiting for a fetch. An uncacheable one is cancelled now; a cacheable one may
    finish within ``LATE_FACTOR`` deadlines and warm the cache for the requests after it."""
    task.add_done_callback(consume)
    if key is None or loaded.cache is None:
        task.cancel()
        return
    limit = asyncio.get_running_loop().call_later(LATE_FACTOR * loaded.deadline, task.cancel)
    task.add_done_callback(functools.partial(_late, loaded, key, limit))


def _late(
    loaded: LoadedProvider, key: Hashable, limit: asyncio.TimerHandle, task: asyncio.Task[Any]
) -> None:
    limit.cancel()
    if task.cancelled() or task.exception() is not None or loaded.cache is None:
        return
    try:
        values = _validated(loaded, task.result(), [])
    except BaseException:  # counted nowhere: the request it belonged to already counted a timeout
        return
    loaded.cache.put(key, values, asyncio.get_running_loop().time())


def _forget(inflight: dict[Hashable, Any], key: Hashable, _task: object) -> None:
    inflight.pop(key, None)


def _warn_once(loaded: LoadedProvider, message: str, *args: object) -> None:
    # a provider's first problem is a warning; repeating it on every request would flood
    if not loaded.warned:
        loaded.warned = True
        log.warning(message, *args)


def _failed(loaded: LoadedProvider, cause: str, exc: BaseException | None) -> Signals:
    loaded.metrics.misses[cause] += 1
    level = logging.DEBUG if loaded.warned else logging.WARNING
    loaded.warned = True
    if exc is None:
        log.log(level, "provider %s: %s (deadline %.3fs)", loaded.name, cause, loaded.deadline)
    else:
        log.log(
            level,
            "provider %s: %s: %s: %s",
            loaded.name,
            cause,
            type(exc).__name__,
            exc,
            exc_info=level == logging.DEBUG,
        )
    return _EMPTY


_VALIDATED: Final = 4096  # results kept per provider with reuses_results (cleared when full)


def _reused(
    loaded: LoadedProvider,
    memo: dict[int, tuple[object, Signals, int, Any]],
    raw: object,
    histories: list[EventHistory],
) -> Signals | None:
    """The validated signals of a result returned before (``Provider.reuses_results``: it is
    unchanged), counted as its first validation was; None for a result not seen yet."""
    known = memo.get(id(raw))
    if known is None or known[0] is not raw:
        return None
    if known[3] is not None:  # the history _unwrapped accepted the first time
        histories.append(known[3])
    if known[2]:
        loaded.metrics.misses["invalid"] += 1
        loaded.metrics.invalid_values += known[2]
    return known[1]


def _validated(loaded: LoadedProvider, raw: object, histories: list[EventHistory]) -> Signals:
    """Keep the declared, well-typed, in-range values; a personal provider's history goes to
    ``histories``. A fetch with anything dropped counts as one ``invalid`` miss (a request
    whose signals were partly absent), each dropped value in ``invalid_values``.
    """
    dropped = 0
    given: Mapping[str, Any]
    history: EventHistory | None = None
    if type(raw) is dict:
        given = raw
    else:  # WithHistory, or not a plain dict
        if loaded.validated is not None:  # a provider that returns its results again
            reused = _reused(loaded, loaded.validated, raw, histories)
            if reused is not None:
                return reused
        before = len(histories)
        given, dropped = _unwrapped(loaded, raw, histories)
        history = histories[-1] if len(histories) > before else None
    out: dict[str, SignalValue] = {}
    specs = loaded.checks
    exact = loaded.exact
    for name, value in given.items():
        of = type(value)
        if exact.get(name) is of:  # declared, and its exact type needs no more checking
            out[name] = value
            continue
        spec = specs.get(name)
        checked: SignalValue | None
        if spec is None:
            checked = None
        else:
            # the common cases, inlined from _check (exact types: a subclass goes through it)
            kind = spec.type
            # (a bool, and a string without allowed values, passed as exact types above)
            if of is str and kind is _STRING and spec.values is not None:
                checked = value if value in spec.values else None
            elif of is tuple and kind is _LIST and spec.values is None and _all_str(value):
                checked = value
            elif (of is int and kind is _INT) or (
                of is float and kind is _FLOAT and isfinite(value)
            ):
                low = spec.minimum
                high = spec.maximum
                out_of_range = (low is not None and value < low) or (
                    high is not None and value > high
                )
                checked = None if out_of_range else value
            else:
                checked = _check(spec, value)
        if checked is None:
            dropped += 1
            _warn_once(
                loaded, "provider %s: dropped invalid signal %s=%r", loaded.name, name, value
            )
            continue
        out[name] = checked
    if dropped:
        loaded.metrics.misses["invalid"] += 1
        loaded.metrics.invalid_values += dropped
    memo = loaded.validated
    if memo is not None and type(raw) is not dict:
        if len(memo) >= _VALIDATED:
            memo.clear()
        memo[id(raw)] = (raw, out, dropped, history)
    # a plain dict: gather merges it with dict.update's fast path (a mappingproxy goes key by
    # key); it is never handed to anyone who could change it
    return out


def _unwrapped(
    loaded: LoadedProvider, raw: object, histories: list[EventHistory]
) -> tuple[Mapping[Any, Any], int]:
    """The signals of a result that is not a plain dict, and 1 if its history was dropped."""
    if not isinstance(raw, WithHistory):
        if not isinstance(raw, Mapping):
            raise TypeError(f"fetch returned {type(raw).__name__}, not a mapping of signals")
        return raw, 0
    if not loaded.personal:
        raise TypeError("only personal providers may return WithHistory")
    signals: object = raw.signals
    if not isinstance(signals, Mapping):
        raise TypeError(f"WithHistory.signals is a {type(signals).__name__}, not a mapping")
    if type(raw.history) is EventSnapshot or _answers(raw.history):  # ours always answers
        histories.append(raw.history)
        return signals, 0
    _warn_once(loaded, "provider %s: dropped an unusable history %r", loaded.name, raw.history)
    return signals, 1


def _answers(history: EventHistory) -> bool:
    """Whether ``history`` works as an EventHistory, asked once here: a broken one (None, or
    one that raises) would otherwise fail the personalisation of the whole request later."""
    try:
        count = history.count(_PROBE_EVENT, 0.0)
        last = history.last(_PROBE_EVENT)
    except BaseException:  # the provider's code, even sys.exit(): its history is unusable
        return False
    return isinstance(count, int) and (last is None or isinstance(last, int | float))


_STRING: Final = SignalType.STRING
_LIST: Final = SignalType.STRING_LIST
_INT: Final = SignalType.INT
_FLOAT: Final = SignalType.FLOAT


def _all_str(items: tuple[Any, ...]) -> TypeGuard[tuple[str, ...]]:
    for item in items:
        if type(item) is not str:
            return False
    return True


def _check(spec: SignalSpec, value: Any) -> SignalValue | None:
    kind = spec.type
    if kind is SignalType.STRING:
        if not isinstance(value, str) or (spec.values is not None and value not in spec.values):
            return None
        return value
    if kind is SignalType.BOOL:
        return value if isinstance(value, bool) else None
    if kind is SignalType.STRING_LIST:
        if isinstance(value, str) or not isinstance(value, tuple | list | frozenset | set):
            return None
        items = tuple(value)
        if not all(isinstance(i, str) for i in items):
            return None
        if spec.values is not None and not all(i in spec.values for i in items):
            return None
        return items
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if kind is SignalType.INT:
        if not isinstance(value, int):
            return None
        number: int | float = value
    else:
        try:
            number = float(value)
        except OverflowError:  # an int beyond any float
            return None
        if not isfinite(number):  # NaN passes every bound check; infinity is no measurement
            return None
    if (spec.minimum is not None and number < spec.minimum) or (
        spec.maximum is not None and number > spec.maximum
    ):
        return None
    return number


class _Combined:
    """Several providers' histories read as one (counts add up, the latest ``last`` wins)."""

    __slots__ = ("_parts",)

    def __init__(self, parts: Sequence[EventHistory]) -> None:
        self._parts = tuple(parts)

    def count(self, event: str, since: float) -> int:
        return sum(part.count(event, since) for part in self._parts)

    def last(self, event: str) -> float | None:
        times = [t for part in self._parts if (t := part.last(event)) is not None]
        return max(times) if times else None
