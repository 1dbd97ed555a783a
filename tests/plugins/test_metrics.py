"""Provider counters: fallbacks by cause, bounded, in the snapshot and the Prometheus text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slotwise.plugins.gather import gather
from slotwise.plugins.metrics import MAX_FALLBACK_CAUSES, ProviderMetrics, render_prometheus
from slotwise.plugins.provider import Provider, signal
from slotwise.plugins.request import RequestInfo
from slotwise.testing.provider import make_request, provider_set
from slotwise.types import SignalType, SignalValue


class Picky(Provider[Any]):
    """Answers from a fallback when the request has no ``x-mood`` header."""

    name = "picky"
    inline = True
    signals = (signal("picky.mood", SignalType.STRING, "The mood."),)

    async def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        mood = request.header("x-mood")
        if mood is None:
            self.metrics.fallback("no_mood")
            return {"picky.mood": "neutral"}
        return {"picky.mood": mood}


async def test_a_provider_counts_its_fallbacks_in_the_registry_metrics() -> None:
    async with provider_set(Picky) as providers:
        for headers in ({}, {"X-Mood": "sunny"}, {}):
            await gather(providers, make_request(headers=headers))
        loaded = providers.by_name["picky"]
        assert loaded.metrics is loaded.provider.metrics
        assert loaded.metrics.fallbacks == {"no_mood": 2}
        assert providers.metrics()["picky"]["fallbacks_no_mood"] == 2
        text = providers.render_metrics()
    assert "# TYPE slotwise_signal_provider_fallbacks_total counter" in text
    assert 'slotwise_signal_provider_fallbacks_total{provider="picky",cause="no_mood"} 2' in text
    assert loaded.metrics.ok == 3  # a fallback is an answer, not a miss


def test_fallback_causes_are_bounded_and_escaped() -> None:
    metrics = ProviderMetrics()
    for i in range(MAX_FALLBACK_CAUSES + 10):
        metrics.fallback(f"cause_{i}")
    assert len(metrics.fallbacks) == MAX_FALLBACK_CAUSES + 1
    assert metrics.fallbacks["other"] == 10
    odd = ProviderMetrics()
    odd.fallback('a"b\\c\nd')
    assert 'cause="a\\"b\\\\c\\nd"} 1' in render_prometheus({"p": odd})
