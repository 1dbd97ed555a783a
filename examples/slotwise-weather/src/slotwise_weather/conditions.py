"""WMO weather interpretation codes (as Open-Meteo reports them) mapped to a few conditions.

Policies want a handful of words (``weather.condition == "rain"``), not 28 codes.
"""

from __future__ import annotations

CONDITIONS = ("clear", "cloudy", "fog", "drizzle", "rain", "snow", "storm")

_BY_CODE: dict[int, str] = {
    0: "clear",
    1: "clear",  # mainly clear
    2: "cloudy",  # partly cloudy
    3: "cloudy",  # overcast
    45: "fog",
    48: "fog",  # depositing rime fog
    51: "drizzle",
    53: "drizzle",
    55: "drizzle",
    56: "drizzle",  # freezing drizzle
    57: "drizzle",
    61: "rain",
    63: "rain",
    65: "rain",
    66: "rain",  # freezing rain
    67: "rain",
    71: "snow",
    73: "snow",
    75: "snow",
    77: "snow",  # snow grains
    80: "rain",  # rain showers
    81: "rain",
    82: "rain",
    85: "snow",  # snow showers
    86: "snow",
    95: "storm",  # thunderstorm
    96: "storm",  # thunderstorm with hail
    99: "storm",
}


def condition(code: int) -> str | None:
    """The condition of a WMO weather code, or None for a code outside the table."""
    return _BY_CODE.get(code)
