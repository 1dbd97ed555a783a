"""gather(): consent first, deadlines, misses counted, validation, caching, dependencies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import pytest

from slotwise.plugins.gather import gather
from slotwise.plugins.profile_source import Event, EventSnapshot
from slotwise.plugins.provider import Provider, WithHistory, signal
from slotwise.plugins.request import RequestInfo
from slotwise.plugins.schema import SignalType, SignalValue
from slotwise.testing.provider import make_request, provider_set

GRANTED = {"sw_consent": "granted"}


class SeenBy:
    """What personal/contextual test providers saw, per test."""

    requests: list[RequestInfo] = []


class Peek(Provider[Any]):
    """Contextual: records the request it was given."""

    name = "peek"
    signals = (signal("peek.path", SignalType.STRING, "path"),)

    async def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        SeenBy.requests.append(request)
        return {"peek.path": request.path}


class Who(Provider[Any]):
    name = "who"
    personal = True
    signals = (signal("who.id", SignalType.STRING, "the user id"),)

    async def fetch(self, request: RequestInfo) -> WithHistory:
        assert request.user_id is not None
        clicked = EventSnapshot([Event("click", request.received_at - 60)])
        return WithHistory({"who.id": request.user_id}, clicked)


class Leaky(Provider[Any]):
    """Contextual, yet returns a history: refused."""

    name = "leaky"
    signals = (signal("leaky.x", SignalType.INT, "x"),)

    async def fetch(self, request: RequestInfo) -> WithHistory:
        return WithHistory({"leaky.x": 1}, EventSnapshot([Event("click", 1.0)]))


class Hung(Provider[Any]):
    name = "hung"
    deadline = 0.05
    signals = (signal("hung.x", SignalType.INT, "never arrives"),)
    cancelled: list[str] = []  # the paths of fetches that were stopped

    async def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            Hung.cancelled.append(request.path)
            raise
        return {"hung.x": 1}


class Broken(Provider[Any]):
    name = "broken"
    signals = (signal("broken.x", SignalType.INT, "raises"),)

    async def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        raise RuntimeError("upstream says no")


class Sloppy(Provider[Any]):
    name = "sloppy"
    signals = (
        signal("sloppy.n", SignalType.INT, "0..10", minimum=0, maximum=10),
        signal("sloppy.kind", SignalType.STRING, "a or b", values=["a", "b"]),
        signal("sloppy.tags", SignalType.STRING_LIST, "tags"),
        signal("sloppy.f", SignalType.FLOAT, "float"),
    )

    async def fetch(self, request: RequestInfo) -> Mapping[str, Any]:
        return {
            "sloppy.n": 11,  # out of range
            "sloppy.kind": "c",  # not an allowed value
            "sloppy.tags": ["x", "y"],  # a list is accepted and frozen into a tuple
            "sloppy.f": 3,  # an int is a valid float
            "sloppy.undeclared": "z",
        }


class Slow(Provider[Any]):
    """Waits a little (real suspension) and is cached per path."""

    name = "slow"
    ttl = 60.0
    deadline = 1.0
    signals = (signal("slow.calls", SignalType.INT, "how many fetches so far"),)
    calls = 0

    def cache_key(self, request: RequestInfo) -> Hashable | None:
        return request.path

    async def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        type(self).calls += 1
        await asyncio.sleep(0.02)
        return {"slow.calls": type(self).calls}


class Late(Provider[Any]):
    """Cacheable, and always a little later than its deadline."""

    name = "late"
    ttl = 60.0
    deadline = 0.03
    signals = (signal("late.x", SignalType.INT, "x"),)

    def cache_key(self, request: RequestInfo) -> Hashable | None:
        return "all"

    async def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        await asyncio.sleep(0.06)
        return {"late.x": 1}


class InlineButWaits(Provider[Any]):
    """Declares inline but does wait: it must still work (continued as a task)."""

    name = "inlinewaits"
    inline = True
    deadline = 2.0  # not the subject: a loaded machine can stall past the default 50 ms
    signals = (signal("inlinewaits.x", SignalType.INT, "x"),)

    async def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        await asyncio.sleep(0.001)
        return {"inlinewaits.x": 2}


class Zone(Provider[Any]):
    """Produces geo.timezone slowly, to check that time waits for it."""

    name = "zone"
    deadline = 1.0
    signals = (signal("zone.tz", SignalType.STRING, "tz"),)

    async def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        await asyncio.sleep(0.01)
        return {"zone.tz": "Asia/Tokyo"}


class Clock(Provider[Any]):
    name = "clock"
    reads = frozenset({"zone.tz"})
    signals = (signal("clock.tz", SignalType.STRING, "the tz it saw"),)

    async def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        return {"clock.tz": str(request.signals.get("zone.tz", "none"))}


@pytest.fixture(autouse=True)
def _reset() -> None:
    SeenBy.requests = []
    Slow.calls = 0


async def test_without_consent_personal_providers_do_not_run_and_no_id_is_read() -> None:
    async with provider_set("consent", Peek, Who) as providers:
        request = make_request(
            "/x", user_id="u-1", cookies={"sw_uid": "u-1"}, headers={"Authorization": "Bearer t"}
        )
        got = await gather(providers, request)
    assert got.signals["consent.level"] == "contextual"
    assert "who.id" not in got.signals
    assert got.personal is False
    assert got.user_id is None
    assert got.history.count("click", 0) == 0
    [seen] = SeenBy.requests
    assert seen.user_id is None and not seen.cookies and seen.header("cookie") is None
    assert seen.header("authorization") is None
    assert providers.by_name["who"].metrics.misses["no_consent"] == 1


async def test_with_consent_personal_providers_run_and_see_the_user() -> None:
    async with provider_set("consent", Peek, Who) as providers:
        request = make_request("/x", user_id="u-1", cookies=GRANTED)
        got = await gather(providers, request)
    assert got.signals["consent.level"] == "personal"
    assert got.signals["who.id"] == "u-1"
    assert got.user_id == "u-1"
    assert got.history.count("click", request.received_at - 3600) == 1
    assert SeenBy.requests[0].user_id == "u-1"


async def test_without_a_consent_provider_everything_is_contextual() -> None:
    async with provider_set(Peek, Who) as providers:
        got = await gather(providers, make_request(user_id="u-1", cookies=GRANTED))
    assert got.personal is False and "who.id" not in got.signals


async def test_a_hung_provider_costs_its_deadline_and_is_counted() -> None:
    async with provider_set(Peek, Hung) as providers:
        started = time.perf_counter()
        got = await gather(providers, make_request("/p"))
        elapsed = time.perf_counter() - started
        metrics = providers.metrics()
    assert got.signals == {"peek.path": "/p"}
    assert 0.04 <= elapsed < 0.05 + 1.0  # its deadline, plus slack for a loaded machine
    assert metrics["hung"]["misses_timeout"] == 1
    assert "misses_total" in providers.render_metrics()
    assert 'slotwise_signal_provider_misses_total{provider="hung",cause="timeout"} 1' in (
        providers.render_metrics()
    )


async def test_a_raising_provider_only_loses_its_own_signals() -> None:
    async with provider_set(Peek, Broken) as providers:
        got = await gather(providers, make_request("/p"))
        assert providers.by_name["broken"].metrics.misses["error"] == 1
    assert got.signals == {"peek.path": "/p"}


async def test_undeclared_wrong_typed_and_out_of_range_values_are_dropped() -> None:
    async with provider_set(Sloppy) as providers:
        got = await gather(providers, make_request())
        await gather(providers, make_request())
        metrics = providers.by_name["sloppy"].metrics
        # misses count requests (as the other causes do); the dropped values are counted apart
        assert (metrics.misses["invalid"], metrics.invalid_values) == (2, 6)
        text = providers.render_metrics()
    assert 'slotwise_signal_provider_misses_total{provider="sloppy",cause="invalid"} 2' in text
    assert 'slotwise_signal_provider_invalid_values_total{provider="sloppy"} 6' in text
    assert dict(got.signals) == {"sloppy.tags": ("x", "y"), "sloppy.f": 3.0}
    assert isinstance(got.signals["sloppy.f"], float)


async def test_ttl_cache_and_one_fetch_for_concurrent_misses() -> None:
    async with provider_set(Slow) as providers:
        results = await asyncio.gather(*(gather(providers, make_request("/a")) for _ in range(5)))
        again = await gather(providers, make_request("/a"))
        other = await gather(providers, make_request("/b"))
        metrics = providers.by_name["slow"].metrics
    assert [r.signals["slow.calls"] for r in results] == [1] * 5
    assert again.signals["slow.calls"] == 1
    assert other.signals["slow.calls"] == 2
    assert metrics.cache_hits == 1
    assert Slow.calls == 2


async def test_a_reader_waits_for_the_provider_it_reads() -> None:
    async with provider_set(Clock, Zone) as providers:
        got = await gather(providers, make_request())
    assert got.signals["clock.tz"] == "Asia/Tokyo"


async def test_a_reader_runs_without_what_is_not_loaded() -> None:
    async with provider_set(Clock) as providers:
        got = await gather(providers, make_request())
    assert got.signals["clock.tz"] == "none"


async def test_context_merges_upstream_signals() -> None:
    async with provider_set(Peek) as providers:
        got = await gather(providers, make_request("/p"))
    context = got.context(now=123.0, extra={"ad.format": "json"})
    assert context.signals["ad.format"] == "json" and context.signals["peek.path"] == "/p"
    assert context.now == 123.0


async def test_a_late_cacheable_answer_warms_the_cache_for_the_next_request() -> None:
    async with provider_set(Late) as providers:
        first = await gather(providers, make_request())
        assert "late.x" not in first.signals
        cache = providers.by_name["late"].cache
        assert cache is not None
        for _ in range(100):  # the abandoned fetch finishes about 0.03 s later
            if len(cache):
                break
            await asyncio.sleep(0.01)
        second = await gather(providers, make_request())
        metrics = providers.by_name["late"].metrics
    assert second.signals["late.x"] == 1
    assert (metrics.misses["timeout"], metrics.cache_hits) == (1, 1)


async def test_an_inline_provider_that_waits_still_delivers() -> None:
    async with provider_set(InlineButWaits, Peek) as providers:
        got = await gather(providers, make_request("/i"))
    assert dict(got.signals) == {"inlinewaits.x": 2, "peek.path": "/i"}


class Glacial(Hung):
    name = "glacial"
    deadline = 5.0
    signals = (signal("glacial.x", SignalType.INT, "never arrives"),)


async def test_a_budget_returns_what_arrived_in_time() -> None:
    async with provider_set(Peek, Glacial, Broken) as providers:
        started = time.perf_counter()
        got = await gather(providers, make_request("/b"), budget=0.05)
        elapsed = time.perf_counter() - started
        metrics = providers.metrics()
    assert dict(got.signals) == {"peek.path": "/b"}
    assert elapsed < 1.0  # the budget, not Glacial's own 5 s deadline
    assert metrics["glacial"]["misses_timeout"] == 1


async def test_cancelling_gather_counts_the_providers_given_up() -> None:
    async with provider_set(Peek, Hung) as providers:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await gather(providers, make_request("/c"))
        await asyncio.sleep(0)
        assert providers.by_name["hung"].metrics.misses["timeout"] == 1


async def _stopped(path: str) -> bool:
    for _ in range(50):  # an abandoned fetch is cancelled by a callback, soon after
        if path in Hung.cancelled:
            return True
        await asyncio.sleep(0.01)
    return False


async def test_a_fetch_given_up_on_is_stopped_however_it_was_given_up() -> None:
    async with provider_set(Hung) as providers:
        # its own deadline
        await gather(providers, make_request("/deadline"))
        assert await _stopped("/deadline")
        # the request's budget, before the deadline
        await gather(providers, make_request("/budget"), budget=0.01)
        assert await _stopped("/budget")
        # the request itself cancelled
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await gather(providers, make_request("/cancelled"))
        assert await _stopped("/cancelled")
        assert providers.by_name["hung"].metrics.misses["timeout"] == 3


async def test_only_personal_providers_may_return_a_history() -> None:
    async with provider_set(Leaky) as providers:
        got = await gather(providers, make_request())
        assert providers.by_name["leaky"].metrics.misses["error"] == 1
    assert "leaky.x" not in got.signals
    assert got.history.last("click") is None


def test_request_info_from_an_asgi_scope() -> None:
    scope = {
        "type": "http",
        "method": "get",
        "path": "/p/1",
        "query_string": b"a=1&a=2&b=",
        "headers": [(b"Cookie", b'x=1; bad; y="two"'), (b"Accept", b"a"), (b"accept", b"b")],
        "client": ("10.0.0.1", 1234),
    }
    info = RequestInfo.from_scope(scope, user_id="u", received_at=5.0)
    assert (info.method, info.path, info.user_id) == ("GET", "/p/1", "u")
    assert info.client_ip == "10.0.0.1"
    assert info.query == {"a": "1", "b": ""}
    assert info.cookies == {"x": "1", "y": "two"}
    assert info.header("ACCEPT") == "a, b"
    assert RequestInfo.from_scope(scope, client_ip="198.51.100.4").client_ip == "198.51.100.4"


# -- a provider's SystemExit, KeyboardInterrupt or own CancelledError stays in its box --------


def _raising(exc: Callable[[], BaseException], *, inline: bool, waits: bool) -> type[Provider[Any]]:
    async def fetch(self: Provider[Any], request: RequestInfo) -> Mapping[str, SignalValue]:
        if waits:
            await asyncio.sleep(0)
        raise exc()

    return type(
        "Quits",
        (Provider,),
        {
            "name": "quits",
            "inline": inline,
            "signals": (signal("quits.x", SignalType.INT, "x"),),
            "fetch": fetch,
        },
    )


ESCAPES: dict[str, Callable[[], BaseException]] = {
    "SystemExit": lambda: SystemExit(9),
    "KeyboardInterrupt": KeyboardInterrupt,
    "own CancelledError": asyncio.CancelledError,
}


@pytest.mark.parametrize("escape", list(ESCAPES))
@pytest.mark.parametrize(
    ("inline", "waits"), [(True, False), (True, True), (False, False), (False, True)]
)
async def test_a_provider_exiting_costs_only_its_signals(
    escape: str, inline: bool, waits: bool
) -> None:
    quits = _raising(ESCAPES[escape], inline=inline, waits=waits)
    async with provider_set(Peek, quits) as providers:
        for _ in range(2):  # the loop and the worker survive it, request after request
            got = await gather(providers, make_request("/q"))
            assert dict(got.signals) == {"peek.path": "/q"}
        metrics = providers.by_name["quits"].metrics
        assert (metrics.misses["error"], metrics.misses["timeout"]) == (2, 0)


async def test_our_own_cancellation_is_still_a_timeout() -> None:
    async with provider_set(Hung) as providers:
        await gather(providers, make_request("/own"))
        assert await _stopped("/own")
        metrics = providers.by_name["hung"].metrics
        assert (metrics.misses["timeout"], metrics.misses["error"]) == (1, 0)


# -- a personal provider's unusable history costs only that history ---------------------------


class _RaisingHistory:
    def count(self, event: str, since: float) -> int:
        raise RuntimeError("history count boom")

    def last(self, event: str) -> float | None:
        raise RuntimeError("history last boom")


class _WrongHistory:
    def count(self, event: str, since: float) -> str:
        return "many"

    def last(self, event: str) -> float | None:
        return None


def _with_history(history: object) -> type[Provider[Any]]:
    async def fetch(self: Provider[Any], request: RequestInfo) -> WithHistory:
        return WithHistory({"badhist.x": 1}, history)  # type: ignore[arg-type]

    return type(
        "BadHist",
        (Provider,),
        {
            "name": "badhist",
            "personal": True,
            "signals": (signal("badhist.x", SignalType.INT, "x"),),
            "fetch": fetch,
        },
    )


@pytest.mark.parametrize("history", [None, _RaisingHistory(), _WrongHistory(), object()], ids=type)
async def test_an_unusable_history_is_dropped_and_counted_invalid(history: object) -> None:
    async with provider_set("consent", Who, _with_history(history)) as providers:
        request = make_request("/h", user_id="u-1", cookies=GRANTED)
        got = await gather(providers, request)
        metrics = providers.by_name["badhist"].metrics
        assert (metrics.misses["invalid"], metrics.invalid_values, metrics.ok) == (1, 1, 1)
    assert got.personal and got.signals["badhist.x"] == 1 and got.signals["who.id"] == "u-1"
    # Who's history is still there, and asking it (as behavioural rules do) never raises
    assert got.history.count("click", request.received_at - 3600) == 1
    assert got.history.last("add_to_cart") is None


# -- non-finite numbers are not values -------------------------------------------------------


class Numbers(Provider[Any]):
    name = "numbers"
    signals = (
        signal("numbers.nan", SignalType.FLOAT, "nan"),
        signal("numbers.bounded", SignalType.FLOAT, "nan, bounded", minimum=0, maximum=1),
        signal("numbers.inf", SignalType.FLOAT, "infinity"),
        signal("numbers.huge", SignalType.FLOAT, "an int beyond any float"),
        signal("numbers.ok", SignalType.FLOAT, "fine"),
    )

    async def fetch(self, request: RequestInfo) -> Mapping[str, Any]:
        return {
            "numbers.nan": float("nan"),
            "numbers.bounded": float("nan"),
            "numbers.inf": float("-inf"),
            "numbers.huge": 10**400,
            "numbers.ok": 0.5,
        }


async def test_non_finite_floats_are_dropped_as_invalid() -> None:
    async with provider_set(Numbers) as providers:
        got = await gather(providers, make_request())
        metrics = providers.by_name["numbers"].metrics
        assert (metrics.misses["invalid"], metrics.invalid_values) == (1, 4)
        assert metrics.misses["error"] == 0
    assert dict(got.signals) == {"numbers.ok": 0.5}


class Ranged(Provider[Any]):
    name = "ranged"
    signals = (
        signal("ranged.low", SignalType.INT, "1..5, below", minimum=1, maximum=5),
        signal("ranged.high", SignalType.FLOAT, "0..1, above", minimum=0, maximum=1),
        signal("ranged.in", SignalType.INT, "1..5, within", minimum=1, maximum=5),
        signal("ranged.edge", SignalType.FLOAT, "0..1, on the edge", minimum=0, maximum=1),
        signal("ranged.free", SignalType.INT, "unbounded"),
        signal("ranged.flag", SignalType.INT, "a bool is no int"),
        signal("ranged.text", SignalType.STRING, "any string"),
        signal("ranged.yes", SignalType.BOOL, "a bool"),
        signal("ranged.word", SignalType.BOOL, "a string is no bool"),
    )

    async def fetch(self, request: RequestInfo) -> Mapping[str, Any]:
        return {
            "ranged.low": 0,
            "ranged.high": 1.5,
            "ranged.in": 3,
            "ranged.edge": 1.0,
            "ranged.free": -(10**12),
            "ranged.flag": True,
            "ranged.text": "",
            "ranged.yes": False,
            "ranged.word": "true",
        }


async def test_numbers_are_checked_against_their_range_and_exact_types_pass() -> None:
    async with provider_set(Ranged) as providers:
        got = await gather(providers, make_request())
        metrics = providers.by_name["ranged"].metrics
        assert (metrics.misses["invalid"], metrics.invalid_values) == (1, 4)
    assert dict(got.signals) == {
        "ranged.in": 3,
        "ranged.edge": 1.0,
        "ranged.free": -(10**12),
        "ranged.text": "",
        "ranged.yes": False,
    }


class Quick(Provider[Any]):
    """Never waits: answers through fetch_now, which gather calls without a coroutine."""

    name = "quick"
    inline = True
    signals = (signal("quick.path", SignalType.STRING, "path"),)
    calls: list[str] = []

    async def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        Quick.calls.append("fetch")
        return self.fetch_now(request)

    def fetch_now(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        Quick.calls.append("fetch_now")
        if request.path == "/raise":
            raise RuntimeError("no")
        return {"quick.path": request.path}


class QuickOwnFetch(Quick):
    """Overrides fetch alone: its fetch is what runs."""

    name = "quick_own"

    async def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        Quick.calls.append("own fetch")
        return {"quick.path": "own " + request.path}


class QuickWaiting(Quick):
    """Declares that it waits: fetch_now is not used outside the request's task either."""

    name = "quick_waiting"
    inline = False


async def test_a_provider_answering_at_once_is_called_through_fetch_now() -> None:
    Quick.calls = []
    async with provider_set(Peek, Quick) as providers:
        got = await gather(providers, make_request("/a"))
        broken = await gather(providers, make_request("/raise"))
        metrics = providers.by_name["quick"].metrics
        assert (metrics.fetches, metrics.ok, metrics.misses["error"]) == (2, 1, 1)
    assert got.signals["quick.path"] == "/a"
    assert dict(broken.signals) == {"peek.path": "/raise"}  # only its own signals lost
    assert Quick.calls == ["fetch_now", "fetch_now"]


@pytest.mark.parametrize(
    ("kind", "path", "calls"),
    [(QuickOwnFetch, "own /a", ["own fetch"]), (QuickWaiting, "/a", ["fetch", "fetch_now"])],
)
async def test_fetch_runs_when_fetch_now_is_not_the_providers_answer(
    kind: type[Provider[Any]], path: str, calls: list[str]
) -> None:
    Quick.calls = []
    async with provider_set(kind) as providers:
        got = await gather(providers, make_request("/a"))
    assert got.signals["quick.path"] == path
    assert Quick.calls == calls
