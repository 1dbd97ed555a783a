"""Per-client rate limits on the event endpoints (``events.rate_limit``).

The `limits` library counts each client's hits in a moving window, in the same store the
proxies share when it is Redis (``redis://``, ``redis+cluster://``): a client is limited across
every worker and machine. On ``sqlite://`` and ``memory://`` the counts are each process's own
(the limit then applies per worker). The client is the address the trusted-proxy rules give
(``proxy.trusted_proxies``). A limit the store cannot check does not refuse events: they are
taken, and the failure is logged.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisClusterStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

log = logging.getLogger("slotwise.events.rate_limit")
_PREFIX = "slotwise:ratelimit"


def check_rate(text: str) -> None:
    """Raise ValueError unless ``text`` is empty or limits' notation (``100/second``,
    ``100/second;2000/minute``)."""
    if text.strip():
        try:
            parse_many(text)
        except ValueError:
            raise ValueError(
                f"{text!r} is not a rate: write e.g. 100/second or 100/second;2000/minute"
            ) from None


def storage_for(store_url: str) -> Storage:
    """The limits storage beside the state store: its Redis, else this process's memory."""
    scheme, _, rest = store_url.partition("://")
    rest = rest.split("?", 1)[0]  # the store's own options are not redis-py's
    scheme = scheme.lower()
    if scheme == "redis":
        return RedisStorage(f"async+redis://{rest}", implementation="redispy", key_prefix=_PREFIX)
    if scheme == "redis+cluster":
        return RedisClusterStorage(
            f"async+redis+cluster://{rest}", implementation="redispy", key_prefix=_PREFIX
        )
    return MemoryStorage()


class EventRateLimit:
    """Whether a client may send one more request to the event endpoints."""

    def __init__(self, rate: str, storage: Storage) -> None:
        self.items: list[RateLimitItem] = parse_many(rate)
        self.storage = storage
        self.limiter = MovingWindowRateLimiter(storage)

    async def retry_after(self, client: str) -> int | None:
        """None when ``client`` may go on (the hit is counted), else the seconds to wait."""
        try:
            for item in self.items:
                if not await self.limiter.hit(item, "events", client):
                    stats = await self.limiter.get_window_stats(item, "events", client)
                    return max(1, math.ceil(stats.reset_time - time.time()))
        except Exception as exc:  # the limit is a guard, not a gate: events still count
            log.warning("the event rate limit cannot be checked, events are taken: %s", exc)
        return None

    async def aclose(self) -> None:
        """Close the storage's Redis connections (the app's shutdown): limits opens them and
        has no close of its own, so its client (``bridge.storage``, limits 5) is closed here."""
        client = getattr(getattr(self.storage, "bridge", None), "storage", None)
        if client is not None:
            await client.aclose()
