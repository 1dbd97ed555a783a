"""The sender's counts, kept in the store so that /_sw/metrics of any proxy shows the whole
cluster's (the active sender may run in another worker or on another machine)."""

from __future__ import annotations

import msgspec

from slotwise.proxy.state.base import Store

COUNTERS = {
    "sent": "Notifications delivered (2xx from the webhook, accepted by the SMTP server).",
    "retried": "Delivery attempts that failed and were scheduled again.",
    "dead_lettered": "Notifications moved to the dead letters (permanent failure or attempts "
    "exhausted).",
    "delayed_quiet": "Times a due notification was delayed to the end of quiet hours.",
    "cancelled": "Notifications dropped because their trigger no longer wanted them.",
    "erased": "Pending notifications dropped because their user was erased.",
    "audience_pushed": "Scheduled audience pushes delivered (every page answered 2xx).",
    "audience_push_failed": "Scheduled audience push attempts that failed (retried later).",
}
_PREFIX = "notify:stats:"
GAUGE_KEY = _PREFIX + "gauges"


class Gauges(msgspec.Struct):
    lag: float  # seconds the oldest due notification has waited past its due time
    pending: int  # notifications scheduled (due or not)
    at: float


def counter_key(name: str) -> str:
    return _PREFIX + name


async def count(store: Store, name: str, amount: int = 1) -> None:
    try:
        await store.incr(counter_key(name), amount)
    except Exception:  # the count is not worth failing a delivery for
        pass


async def publish_gauges(store: Store, gauges: Gauges, ttl: float) -> None:
    await store.set(GAUGE_KEY, msgspec.json.encode(gauges), ttl=ttl)


async def render(store: Store) -> str:
    """Prometheus text of the counters and gauges (the gauges are 0 when no sender is active)."""
    names = list(COUNTERS)
    raw = await store.get_many([counter_key(n) for n in names] + [GAUGE_KEY])
    lines = []
    for name, value in zip(names, raw, strict=False):
        metric = f"slotwise_notifications_{name}_total"
        lines += [f"# HELP {metric} {COUNTERS[name]}", f"# TYPE {metric} counter"]
        lines.append(f"{metric} {int(value) if value is not None else 0}")
    gauges = Gauges(0.0, 0, 0.0)
    if raw[-1] is not None:
        try:
            gauges = msgspec.json.decode(raw[-1], type=Gauges)
        except msgspec.DecodeError:
            pass
    lines += [
        "# HELP slotwise_notifications_lag_seconds How long the oldest due notification has "
        "waited past its due time (the active sender's view).",
        "# TYPE slotwise_notifications_lag_seconds gauge",
        f"slotwise_notifications_lag_seconds {gauges.lag:.3f}",
        "# HELP slotwise_notifications_pending Notifications scheduled and not yet sent.",
        "# TYPE slotwise_notifications_pending gauge",
        f"slotwise_notifications_pending {gauges.pending}",
    ]
    return "\n".join(lines) + "\n"
