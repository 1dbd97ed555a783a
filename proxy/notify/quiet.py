"""Quiet hours: the first moment at or after a time that is outside the user's quiet hours,
read on the wall clock of their time zone (UTC when unknown or not a valid zone name)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_UTC = dt.UTC


def zone(name: str | None) -> dt.tzinfo:
    if not name:
        return _UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # not a zone name: the signal is untrusted input
        return _UTC


def quiet_until(at: float, start: int | None, end: int | None, time_zone: str | None) -> float:
    """``at`` when it is outside quiet hours ``start..end`` (minutes after midnight, wrapping
    past midnight when start > end); else the end of those quiet hours."""
    if start is None or end is None or start == end:
        return at
    tz = zone(time_zone)
    local = dt.datetime.fromtimestamp(at, tz)
    minute = local.hour * 60 + local.minute
    if start < end:
        if not start <= minute < end:
            return at
        day = local.date()
    elif minute >= start:
        day = local.date() + dt.timedelta(days=1)
    elif minute < end:
        day = local.date()
    else:
        return at
    wall = dt.datetime.combine(day, dt.time(end // 60, end % 60), tzinfo=tz)
    return max(at, wall.timestamp())
