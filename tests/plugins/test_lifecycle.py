"""ProviderSet.start / aclose: bounded in time, failures named, every provider closed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import Any

import pytest

from slotwise.plugins import registry
from slotwise.plugins.errors import PluginError
from slotwise.plugins.loaded import ProviderSet
from slotwise.plugins.provider import Provider, signal
from slotwise.plugins.request import RequestInfo
from slotwise.plugins.schema import SignalType, SignalValue

Hook = Callable[[Provider[Any]], Coroutine[Any, Any, None]]
closed: list[str] = []


async def _fine(self: Provider[Any]) -> None:
    return None


async def _closes(self: Provider[Any]) -> None:
    closed.append(type(self).name)


async def _raises(self: Provider[Any]) -> None:
    raise ConnectionError("cannot reach http://127.0.0.1:9")


async def _exits(self: Provider[Any]) -> None:
    raise SystemExit(4)


async def _hangs(self: Provider[Any]) -> None:
    await asyncio.sleep(3600)


async def _hangs_stubbornly(self: Provider[Any]) -> None:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:  # ignored once: the test's loop must still be able to end
        await asyncio.sleep(3600)


def _provider(name: str, *, start: Hook = _fine, aclose: Hook = _closes) -> type[Provider[Any]]:
    async def fetch(self: Provider[Any], request: RequestInfo) -> Mapping[str, SignalValue]:
        return {}

    attributes = {
        "name": name,
        "signals": (signal(f"{name}.x", SignalType.INT, "x"),),
        "fetch": fetch,
        "start": start,
        "aclose": aclose,
    }
    return type(name.title(), (Provider,), attributes)


@pytest.fixture(autouse=True)
def _short_limits(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(ProviderSet, "start_timeout", 0.1)
    monkeypatch.setattr(ProviderSet, "close_timeout", 0.1)
    closed.clear()
    yield


def _load(register_provider: Any, *classes: type[Provider[Any]]) -> ProviderSet:
    for cls in classes:
        register_provider(cls)
    return registry.load_providers(selection=",".join(cls.name for cls in classes))


@pytest.mark.parametrize(
    ("hook", "expected"),
    [
        (_raises, "raised ConnectionError: cannot reach http://127.0.0.1:9"),
        (_exits, "raised SystemExit(4)"),
        (_hangs, "did not finish within 0.1 s"),
        (_hangs_stubbornly, "did not finish within 0.1 s"),
    ],
    ids=["raises", "sys.exit", "hangs", "ignores cancellation"],
)
async def test_a_failing_start_is_provider_start_and_closes_the_started(
    hook: Hook, expected: str, register_provider: Any
) -> None:
    providers = _load(register_provider, _provider("first"), _provider("bad", start=hook))
    started = time.perf_counter()
    with pytest.raises(PluginError) as info:
        await providers.start()
    assert time.perf_counter() - started < 2
    [problem] = info.value.problems
    assert (problem.code, problem.provider) == ("provider_start", "bad")
    assert expected in problem.message and "-bad" in problem.message
    assert closed == ["first"]  # the one started before it is closed again, not "bad"


@pytest.mark.parametrize("hook", [_raises, _exits, _hangs, _hangs_stubbornly])
async def test_every_provider_is_closed_even_if_one_fails_to(
    hook: Hook, register_provider: Any, caplog: pytest.LogCaptureFixture
) -> None:
    providers = _load(
        register_provider, _provider("one"), _provider("bad", aclose=hook), _provider("two")
    )
    await providers.start()
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="slotwise.plugins"):
        await providers.aclose()
    assert time.perf_counter() - started < 2
    assert closed == ["two", "one"]  # reverse order of start, "bad" in between
    [record] = [r for r in caplog.records if "aclose()" in r.getMessage()]
    assert record.getMessage().startswith("provider bad: aclose() ")


async def test_a_raising_runs_inline_is_provider_start(register_provider: Any) -> None:
    class Confused(Provider[Any]):
        name = "confused"
        signals = (signal("confused.x", SignalType.STRING, "Nothing."),)

        def runs_inline(self) -> bool:
            raise RuntimeError("cannot tell")

        async def fetch(self, request: RequestInfo) -> dict[str, SignalValue]:
            return {}

    providers = _load(register_provider, Confused)
    with pytest.raises(PluginError) as info:
        await providers.start()
    [problem] = info.value.problems
    assert (problem.code, problem.provider) == ("provider_start", "confused")
    assert "runs_inline() raised RuntimeError: cannot tell" in problem.message
