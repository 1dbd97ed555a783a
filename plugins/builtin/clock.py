"""The ``time`` provider: local hour, weekday and daypart of the request, in the user's zone.

The zone is ``geo.timezone`` when the geo provider found one (this provider ``reads`` it), else
the configured ``default_timezone``. The instant is ``request.received_at``, so the signals are
reproducible in tests and agree with the decision log.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Final
from zoneinfo import ZoneInfo

from slotwise.plugins.builtin.configs import TimeConfig, time_zone
from slotwise.plugins.provider import Provider, signal
from slotwise.plugins.request import RequestInfo
from slotwise.types import SignalType, SignalValue

# From 1973 every zone's UTC offset, and every change of it, falls on a whole minute, so the
# local hour and weekday are those of the request's UTC minute (earlier, local mean times
# such as Amsterdam's +0:19:32 did not): the answer is reused within the minute.
_WHOLE_MINUTES_SINCE: Final = 100_000_000.0
WEEKDAYS: Final[tuple[str, ...]] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAYPARTS: Final[tuple[str, ...]] = ("morning", "afternoon", "evening", "night")


class TimeProvider(Provider[TimeConfig]):
    """Local time signals; reads ``geo.timezone``."""

    name = "time"
    inline = True
    config_type = TimeConfig
    deadline = 0.01
    reads = frozenset({"geo.timezone"})
    reuses_results = True  # one answer per zone and minute: gather validates it once
    signals = (
        signal("time.hour", SignalType.INT, "Local hour of the day.", minimum=0, maximum=23),
        signal("time.weekday", SignalType.STRING, "Local day of the week.", values=WEEKDAYS),
        signal(
            "time.daypart",
            SignalType.STRING,
            "morning 05-11, afternoon 12-16, evening 17-21, night 22-04 (local).",
            values=DAYPARTS,
        ),
    )

    def __init__(self, config: TimeConfig) -> None:
        super().__init__(config)
        self._default = time_zone(config.default_timezone)
        self._zones: dict[str, ZoneInfo | None] = {}
        # per zone: the UTC minute of its last answer, and the answer (as many as _zones)
        self._minutes: dict[ZoneInfo, tuple[int, Mapping[str, SignalValue]]] = {}

    async def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        return self.fetch_now(request)

    def fetch_now(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        """``fetch`` without a coroutine: gather calls it directly (it never waits)."""
        zone = self._default
        name = request.signals.get("geo.timezone")
        if isinstance(name, str):
            zone = self._lookup(name) or self._default
        at = request.received_at
        minute = int(at // 60) if at >= _WHOLE_MINUTES_SINCE else -1  # -1: never kept
        known = self._minutes.get(zone)
        if known is not None and known[0] == minute:
            return known[1]
        local = datetime.fromtimestamp(at, zone)
        answer: Mapping[str, SignalValue] = MappingProxyType(
            {
                "time.hour": local.hour,
                "time.weekday": WEEKDAYS[local.weekday()],
                "time.daypart": daypart(local.hour),
            }
        )
        if minute >= 0:
            self._minutes[zone] = (minute, answer)
        return answer

    def _lookup(self, name: str) -> ZoneInfo | None:
        # ZoneInfo caches by key already; this also remembers names that do not exist, and is
        # bounded by the number of zones a geo source can produce.
        if name not in self._zones:
            try:
                self._zones[name] = time_zone(name)
            except ValueError:
                self._zones[name] = None
        return self._zones[name]


def daypart(hour: int) -> str:
    """The daypart of a local hour."""
    if 5 <= hour <= 11:
        return "morning"
    if 12 <= hour <= 16:
        return "afternoon"
    if 17 <= hour <= 21:
        return "evening"
    return "night"
