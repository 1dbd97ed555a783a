"""How long gather() takes per request with the built-in providers.

Run with ``make bench`` or ``.venv/bin/pytest -m benchmark tests/benchmarks/test_signals_gather.py
-s``. Baseline in the same run: the same providers forced to run each in its own task
(``inline`` off), which is how providers doing I/O run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from slotwise.plugins.gather import gather
from slotwise.plugins.profile_source import Cart, MemoryProfileSource, Profile
from slotwise.plugins.provider import ProviderServices
from slotwise.testing.provider import make_request, provider_set

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)
HEADERS = {
    "User-Agent": IPHONE,
    "Accept-Language": "de-DE,de;q=0.9",
    "Referer": "https://www.google.com/",
    "CF-IPCountry": "DE",
    "CF-Timezone": "Europe/Berlin",
}
ROUNDS, PER_ROUND = 7, 2000


async def _median_us(run: Callable[[], Coroutine[Any, Any, Any]]) -> float:
    for _ in range(200):  # warm caches (ua-parser, zoneinfo, TCF decode)
        await run()
    samples = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(PER_ROUND):
            await run()
        samples.append((time.perf_counter() - started) / PER_ROUND * 1e6)
    return statistics.median(samples)


@pytest.mark.benchmark
async def test_gather_per_request() -> None:
    source = MemoryProfileSource()
    source.add(
        "u1", profile=Profile(age=30, segments=("loyal",), visits=4), cart=Cart(19.9, ("a",))
    )
    contextual = make_request("/c/shoes", query="placement=top", headers=HEADERS)
    personal = make_request(
        "/c/shoes", query="placement=top", headers=HEADERS, cookies={"sw_consent": "yes"},
        user_id="u1",
    )  # fmt: skip
    async with provider_set(
        "consent", "request", "device", "geo", "time", "profile",
        services=ProviderServices(profiles=source),
    ) as providers:  # fmt: skip
        figures = {
            "contextual, inline": await _median_us(lambda: gather(providers, contextual)),
            "personal, inline": await _median_us(lambda: gather(providers, personal)),
        }
        for loaded in providers:
            loaded.inline = False
        figures["contextual, a task each"] = await _median_us(lambda: gather(providers, contextual))
        figures["personal, a task each"] = await _median_us(lambda: gather(providers, personal))
    for label, micros in figures.items():
        print(f"gather {label}: {micros:.1f} us median of {ROUNDS} x {PER_ROUND}")
    ratio = figures["contextual, a task each"] / figures["contextual, inline"]
    print(f"inline speed-up (contextual): {ratio:.2f}x")
    assert figures["contextual, inline"] < figures["contextual, a task each"]
