"""The weather provider against a fake Open-Meteo API on 127.0.0.1."""

from __future__ import annotations

import time

import pytest
from slotwise_weather import WeatherProvider
from slotwise_weather.conditions import CONDITIONS, condition
from slotwise_weather.testing import FakeWeatherAPI

from slotwise.plugins.errors import PluginError
from slotwise.plugins.gather import gather
from slotwise.plugins.registry import load_providers, load_schema
from slotwise.testing.provider import make_request, provider_set

BERLIN = {"CF-IPLatitude": "52.52", "CF-IPLongitude": "13.40"}
POTSDAM = {"CF-IPLatitude": "52.55", "CF-IPLongitude": "13.45"}  # same 0.25-degree cell
MUNICH = {"CF-IPLatitude": "48.14", "CF-IPLongitude": "11.58"}


def test_installed_as_a_slotwise_plugin() -> None:
    spec = load_schema().get("weather.condition")
    assert spec is not None and spec.provider == "weather"
    assert spec.values == frozenset(CONDITIONS)


def test_wmo_codes() -> None:
    assert [condition(c) for c in (0, 3, 45, 53, 63, 75, 81, 95)] == [
        "clear",
        "cloudy",
        "fog",
        "drizzle",
        "rain",
        "snow",
        "rain",
        "storm",
    ]
    assert condition(42) is None


async def test_weather_at_the_visitors_location_cached_per_cell() -> None:
    async with FakeWeatherAPI() as api:
        api.current = {"temperature_2m": 14.5, "weather_code": 63, "wind_speed_10m": 20.0}
        # a deadline the first call of a fresh HTTP client meets on a loaded machine
        config = {"weather": {"api_url": api.url, "deadline_ms": 2000}}
        async with provider_set("geo", WeatherProvider, config=config) as providers:
            berlin = await gather(providers, make_request(headers=BERLIN))
            potsdam = await gather(providers, make_request(headers=POTSDAM))
            munich = await gather(providers, make_request(headers=MUNICH))
            nowhere = await gather(providers, make_request())
            metrics = providers.by_name["weather"].metrics
    assert berlin.signals["weather.condition"] == "rain"
    assert berlin.signals["weather.temperature_c"] == 14.5
    assert berlin.signals["weather.wind_kmh"] == 20.0
    assert "weather.is_day" not in berlin.signals
    assert potsdam.signals["weather.condition"] == "rain"
    assert munich.signals["weather.condition"] == "rain"
    assert not any(k.startswith("weather.") for k in nowhere.signals)
    assert len(api.requests) == 2  # Berlin and Potsdam share a cell
    assert api.requests[0] == {
        "latitude": "52.625",
        "longitude": "13.375",
        "current": "temperature_2m,weather_code,wind_speed_10m,is_day",
    }
    assert metrics.cache_hits == 1


async def test_a_hung_api_costs_at_most_the_deadline() -> None:
    async with FakeWeatherAPI() as api:
        api.delay = float("inf")
        config = {"weather": {"api_url": api.url, "deadline_ms": 100}}
        async with provider_set("geo", WeatherProvider, config=config) as providers:
            started = time.perf_counter()
            got = await gather(providers, make_request(headers=BERLIN))
            elapsed = time.perf_counter() - started
            assert providers.by_name["weather"].metrics.misses["timeout"] == 1
    assert got.signals["geo.latitude"] == 52.52
    assert not any(k.startswith("weather.") for k in got.signals)
    # the deadline plus scheduling slack on a loaded machine (under the 2 s HTTP timeout)
    assert elapsed < 0.1 + 1.0


async def test_an_api_error_leaves_the_signals_absent() -> None:
    async with FakeWeatherAPI() as api:
        api.status = 503
        # the answer must arrive to count as an error, not as a timeout
        config = {"weather": {"api_url": api.url, "deadline_ms": 2000}}
        async with provider_set("geo", WeatherProvider, config=config) as providers:
            got = await gather(providers, make_request(headers=BERLIN))
            assert providers.by_name["weather"].metrics.misses["error"] == 1
    assert not any(k.startswith("weather.") for k in got.signals)


def test_bad_config_names_the_provider() -> None:
    with pytest.raises(PluginError) as info:
        load_providers({"weather": {"api_url": "ftp://x", "grid": 1}}, selection="weather")
    [problem] = info.value.problems
    assert problem.provider == "weather"
    assert "grid" in problem.message
