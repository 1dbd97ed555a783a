"""The ``weather`` provider: current conditions at the visitor's approximate location.

It reads ``geo.latitude`` and ``geo.longitude`` (from slotwise's geo provider), rounds them to
a grid cell (``grid_degrees``, 0.25 by default: about 25 km) and asks an Open-Meteo compatible
API for the current weather there. Answers are cached per cell for ``ttl`` (10 minutes): a
busy site makes a few requests per cell and hour, not one per page view. The API is called
under the provider's deadline; when it is slow or down, weather signals are simply absent and
the page is served as usual.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import httpx
import msgspec

from slotwise.plugins.provider import Provider, signal
from slotwise.plugins.request import RequestInfo
from slotwise.plugins.schema import SignalType, SignalValue
from slotwise_weather.conditions import CONDITIONS, condition

_CURRENT = "temperature_2m,weather_code,wind_speed_10m,is_day"


class WeatherConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``[plugins.weather]`` in slotwise.toml."""

    api_url: str = "https://api.open-meteo.com/v1/forecast"
    grid_degrees: float = 0.25
    http_timeout_s: float = 2.0
    max_connections: int = 16

    def __post_init__(self) -> None:
        if not self.api_url.startswith(("http://", "https://")):
            raise ValueError(f"api_url must be an http(s) URL, not {self.api_url!r}")
        if not 0 < self.grid_degrees <= 5:
            raise ValueError("grid_degrees must be in (0, 5]")
        if self.http_timeout_s <= 0:
            raise ValueError("http_timeout_s must be positive")


class _Current(msgspec.Struct):
    temperature_2m: float
    weather_code: int
    wind_speed_10m: float | None = None
    is_day: int | None = None


class _Answer(msgspec.Struct):
    current: _Current


class WeatherProvider(Provider[WeatherConfig]):
    """Current weather from an HTTP API, cached per grid cell."""

    name = "weather"
    config_type = WeatherConfig
    deadline = 0.15
    ttl = 600.0
    reads = frozenset({"geo.latitude", "geo.longitude"})
    signals = (
        signal(
            "weather.condition",
            SignalType.STRING,
            "Current conditions at the visitor's location.",
            values=CONDITIONS,
        ),
        signal(
            "weather.temperature_c",
            SignalType.FLOAT,
            "Air temperature 2 m above ground, degrees Celsius.",
            minimum=-90,
            maximum=60,
        ),
        signal(
            "weather.wind_kmh",
            SignalType.FLOAT,
            "Wind speed 10 m above ground, km/h.",
            minimum=0,
            maximum=500,
        ),
        signal("weather.is_day", SignalType.BOOL, "Whether the sun is up there."),
    )

    def __init__(self, config: WeatherConfig) -> None:
        super().__init__(config)
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            timeout=self.config.http_timeout_s,
            limits=httpx.Limits(max_connections=self.config.max_connections),
            headers={"user-agent": "slotwise-weather/0.1"},
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def cache_key(self, request: RequestInfo) -> Hashable | None:
        return self._cell(request)

    async def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        cell = self._cell(request)
        if cell is None or self._client is None:
            return {}
        latitude, longitude = cell
        response = await self._client.get(
            self.config.api_url,
            params={"latitude": latitude, "longitude": longitude, "current": _CURRENT},
        )
        response.raise_for_status()
        current = msgspec.json.decode(response.content, type=_Answer).current
        out: dict[str, SignalValue] = {"weather.temperature_c": float(current.temperature_2m)}
        found = condition(current.weather_code)
        if found is not None:
            out["weather.condition"] = found
        if current.wind_speed_10m is not None:
            out["weather.wind_kmh"] = float(current.wind_speed_10m)
        if current.is_day is not None:
            out["weather.is_day"] = current.is_day == 1
        return out

    def _cell(self, request: RequestInfo) -> tuple[float, float] | None:
        latitude: Any = request.signals.get("geo.latitude")
        longitude: Any = request.signals.get("geo.longitude")
        if not isinstance(latitude, float) or not isinstance(longitude, float):
            return None
        grid = self.config.grid_degrees
        # The cell's centre, so that every visitor in it asks about the same place.
        return (
            round((latitude // grid) * grid + grid / 2, 4),
            round((longitude // grid) * grid + grid / 2, 4),
        )
