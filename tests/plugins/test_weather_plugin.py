"""The example third-party plugin (examples/slotwise-weather), installed by scripts/bootstrap.

It is discovered through its entry point, its signals reach the policy checker, a rule on
``weather.condition`` matches, and a hung weather API costs at most the provider's deadline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

# Installed by scripts/bootstrap (`make test` runs it); not a skip: CI must exercise it.
from slotwise_weather import WeatherConfig, WeatherProvider
from slotwise_weather import testing as weather_testing

from slotwise.dsl.errors import PolicyError
from slotwise.dsl.loader import load_policy_set
from slotwise.plugins.gather import gather
from slotwise.plugins.registry import candidates, load_schema
from slotwise.testing.provider import make_request, provider_set
from slotwise.testing.proxy import Canned

BERLIN = {"CF-IPLatitude": "52.52", "CF-IPLongitude": "13.40"}
MUNICH = {"CF-IPLatitude": "48.14", "CF-IPLongitude": "11.58"}  # another cell: not cached
POLICY = """policy "weather" version 1

campaign rainy_day {
  applies when ad.campaign_id == "cmp-rain"
  slot hero at "$.creative.image_url" {
    variant sunny "https://cdn.example/sun.jpg"
    variant umbrella "https://cdn.example/umbrella.jpg"
  }
  rule "umbrellas in the rain" when weather.condition == "rain" then pin hero umbrella
  rule "no sun below 5 degrees" when weather.temperature_c < 5 then exclude hero sunny
  optimize clicks
  explore epsilon 5%
  holdout 0%
}
"""


@pytest.fixture
def policy_file(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str) -> Path:
        path = tmp_path / "weather.sw"
        path.write_text(text)
        return path

    return write


def test_discovered_through_its_entry_point() -> None:
    origins = {c.name: c.origin for c in candidates()}
    assert origins["weather"] == "slotwise-weather"
    spec = load_schema().get("weather.condition")
    assert spec is not None and spec.provider == "weather" and not spec.personal


def test_a_rule_on_weather_checks(policy_file: Callable[[str], Path]) -> None:
    policy = load_policy_set([policy_file(POLICY)], load_schema())
    assert policy.campaign("rainy_day").name == "rainy_day"


def test_a_misspelt_weather_signal_is_reported_with_a_hint(
    policy_file: Callable[[str], Path],
) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy_set([policy_file(POLICY.replace("condition ==", "conditon =="))], load_schema())
    text = str(info.value)
    assert "weather.conditon" in text and "weather.condition" in text


def test_without_the_plugin_the_rule_does_not_check(policy_file: Callable[[str], Path]) -> None:
    with pytest.raises(PolicyError, match="weather.condition"):
        load_policy_set([policy_file(POLICY)], load_schema("builtins"))


async def test_a_rule_on_weather_matches(policy_file: Callable[[str], Path]) -> None:
    policy = load_policy_set([policy_file(POLICY)], load_schema())
    campaign = policy.campaign("rainy_day")
    async with weather_testing.FakeWeatherAPI() as api:
        # a deadline the first call of a fresh HTTP client meets on a loaded machine
        config = {"weather": {"api_url": api.url, "deadline_ms": 2000}}
        async with provider_set("geo", "weather", config=config) as providers:
            api.current = {"temperature_2m": 3.0, "weather_code": 63}
            rainy = await gather(providers, make_request(headers=BERLIN))
    ctx = rainy.context(now=time.time(), extra={"ad.campaign_id": "cmp-rain"})
    assert policy.select(ctx) is campaign
    hero = campaign.eligible(ctx).slots["hero"]
    assert hero.pinned == "umbrella"
    assert "sunny" not in hero.variants

    dry = campaign.eligible(
        rainy.context(now=time.time(), extra={"weather.condition": "clear"})
    ).slots["hero"]
    assert dry.pinned is None


async def test_a_hung_weather_api_costs_at_most_the_deadline() -> None:
    async with weather_testing.FakeWeatherAPI() as api:
        api.delay = float("inf")
        config = {"weather": {"api_url": api.url, "deadline_ms": 80}}
        async with provider_set("consent", "request", "geo", "weather", config=config) as ps:
            started = time.perf_counter()
            got = await gather(ps, make_request("/c/rain", headers=BERLIN))
            elapsed = time.perf_counter() - started
            assert ps.by_name["weather"].metrics.misses["timeout"] == 1
    assert got.signals["request.page_type"] == "category"
    assert not any(name.startswith("weather.") for name in got.signals)
    # the deadline plus scheduling slack on a loaded machine (under the 2 s HTTP timeout)
    assert elapsed < 0.08 + 1.0


def test_the_plugins_own_test_suite_passes() -> None:
    import subprocess
    import sys

    example = Path(__file__).resolve().parents[2] / "examples" / "slotwise-weather"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=example,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_value_outside_the_declared_set_is_reported(
    policy_file: Callable[[str], Path],
) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy_set([policy_file(POLICY.replace('== "rain"', '== "rainy"'))], load_schema())
    assert '"rainy"' in str(info.value) and '"rain"' in str(info.value)


def _weather_at(
    url: str, called: str = "localweather", seconds: float = WeatherProvider.deadline
) -> type[WeatherProvider]:
    """The installed weather provider, pointed at ``url`` with a deadline of ``seconds`` (the
    proxy takes no plugin config yet, so the test provider carries it)."""

    class LocalWeather(WeatherProvider):
        name = called
        deadline = seconds

        def __init__(self, config: WeatherConfig) -> None:
            super().__init__(msgspec.structs.replace(config, api_url=url))

    return LocalWeather


RAIN_AD = {
    "campaign_id": "cmp-rain",
    "creative": {"id": "c1", "image_url": "https://cdn.example/generic.jpg"},
}


async def test_through_the_proxy_rain_pins_the_umbrella_and_a_hung_api_costs_the_deadline(
    register_provider: Any, slotwise_proxy: Any
) -> None:
    routes = {"/ad.json": Canned.json(RAIN_AD)}
    async with weather_testing.FakeWeatherAPI() as api:
        api.current = {"temperature_2m": 9.0, "weather_code": 63}
        # deadlines a loaded machine meets: the first call of a fresh HTTP client can outlast
        # the provider's 150 ms, and a fail-open answer keeps the generic image
        register_provider(_weather_at(api.url, "patientweather", 2.0))
        async with slotwise_proxy(
            routes,
            policies={"weather.sw": POLICY},
            plugins="builtins,patientweather",
            proxy_decision_deadline_ms=2000,
            proxy_signals_deadline_ms=2000,
        ) as proxy:
            rainy = await proxy.client.get("/ad.json", headers=BERLIN)
        register_provider(_weather_at(api.url))  # the provider's own 150 ms deadline
        api.delay = float("inf")
        # the proxy waits far longer for signals: the provider's deadline is what cuts it
        async with slotwise_proxy(
            routes,
            policies={"weather.sw": POLICY},
            plugins="builtins,localweather",
            proxy_decision_deadline_ms=2000,
            proxy_signals_deadline_ms=5000,
        ) as proxy:
            started = time.perf_counter()
            hung = await proxy.client.get("/ad.json", headers=MUNICH)
            elapsed = time.perf_counter() - started
    assert rainy.status_code == 200
    assert json.loads(rainy.content)["creative"]["image_url"] == "https://cdn.example/umbrella.jpg"
    assert hung.status_code == 200
    # the deadline plus slack for a loaded machine, well under the proxy's 5 s for signals
    assert elapsed < WeatherProvider.deadline + 1.5
