"""Event collection: the pixel, the SDK's batch endpoint, validation, erasure and the SDK.

Wire it into an ASGI app (the proxy does this in its lifespan)::

    store = open_store(url)                        # slotwise.proxy.state
    collector = EventCollector(store, EventsConfig.load(toml.get("events")))
    app = Starlette(routes=[Mount("/_sw", routes=events_routes(collector)), ...],
                    lifespan=...)                  # lifespan: async with store, collector: ...

Endpoints (relative to the mount): ``GET /px`` (1x1 GIF, one event from query parameters),
``POST /events`` (JSON batch), ``POST /events/validate`` (same checks, stores nothing),
``DELETE /admin/users/{id}`` (erasure; admin token, loopback only by default),
``GET /sdk.js`` (the JavaScript SDK). The proxy logs its decisions with :class:`DecisionLog`.
Consumers read the events log (``config.events_log``) and decode records as
:class:`StoredEvent`. See docs/events.md.
"""

from slotwise.proxy.events.collector import (
    CollectResult,
    ErasureResult,
    EventCollector,
    StoredEvent,
    history_key,
)
from slotwise.proxy.events.config import EventsConfig
from slotwise.proxy.events.decisions import DecisionLog
from slotwise.proxy.events.endpoints import create_events_app, events_routes
from slotwise.proxy.events.schema import EVENT_CLASSES, Event, Rejection

__all__ = [
    "EVENT_CLASSES",
    "CollectResult",
    "DecisionLog",
    "ErasureResult",
    "Event",
    "EventCollector",
    "EventsConfig",
    "Rejection",
    "StoredEvent",
    "create_events_app",
    "events_routes",
    "history_key",
]
