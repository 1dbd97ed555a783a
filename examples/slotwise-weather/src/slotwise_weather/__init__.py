"""slotwise-weather: the current weather at the visitor's location, as slotwise signals."""

from slotwise_weather.provider import WeatherConfig, WeatherProvider

__all__ = ["WeatherConfig", "WeatherProvider"]
