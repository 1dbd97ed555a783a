"""What ``slotwise serve`` hands its ASGI server: :class:`AsgiEntry`, the app with the dispatch
of a request for the upstream compiled.

``ProxyApp.__call__`` is a Python coroutine: for every request its frame was made, then resumed
in the interpreter at each of the request's awaits. The server calls :class:`AsgiEntry`
instead, which sends a request for the upstream straight to :func:`proxy` and everything else
(``/_sw/`` endpoints, the lifespan, access logging, start-up) to the app, which dispatches
through the same two functions. The lifespan passes through :mod:`slotwise.proxy.collector`,
which sets the worker process's garbage collector once the app has started.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slotwise.proxy.collector import CollectorTuning
from slotwise.proxy.decide import Engine, handle
from slotwise.types import Receive, Scope, Send

if TYPE_CHECKING:
    from slotwise.proxy.app import ProxyApp


def is_ours(scope: Scope) -> bool:
    """A request for the proxy itself (``/_sw/...``), by the target as sent: a decoded path
    would make ``/_sw%2fhealth`` ours."""
    raw: bytes | None = scope.get("raw_path")
    return raw.startswith(b"/_sw/") if raw is not None else scope["path"][:5] == "/_sw/"


async def proxy(engine: Engine, scope: Scope, receive: Receive, send: Send) -> None:
    """One request for the upstream, counted as work in flight while it runs (what overload
    reads)."""
    admission = engine.admission
    admission.active += 1
    admission.taken += 1
    try:
        await handle(engine, scope, receive, send)
    finally:
        admission.active -= 1


class AsgiEntry:
    """The ASGI callable of one worker: ``app`` for everything but a request for the upstream
    once the app has started (and without access logging, which the app writes)."""

    def __init__(self, app: ProxyApp) -> None:
        self.app = app
        self._direct = not app.settings.log.access
        self.collector = CollectorTuning(app.settings.proxy.gc_threshold)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.app
        runtime = app.runtime
        kind = scope["type"]
        if runtime is not None and self._direct and kind == "http" and not is_ours(scope):
            await proxy(runtime.engine, scope, receive, send)
        elif kind == "lifespan":  # the worker's process: its collector is ours to set
            await app(scope, receive, self.collector.watching(send))
        else:
            await app(scope, receive, send)
