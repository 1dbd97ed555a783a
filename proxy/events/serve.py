"""A standalone event collector: ``python -m slotwise.proxy.events.serve --store URL``.

Serves the event endpoints under ``/_sw`` (and, with ``--static``, a directory of pages at
``/``) without the rest of the proxy. Used by the crash and browser tests and the benchmark;
in production the endpoints are part of ``slotwise serve``. The store and the ``[events]``
settings are read like the proxy's (``--config``, ``SLOTWISE_*``; ``--store`` wins).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from slotwise.proxy.events.collector import EventCollector
from slotwise.proxy.events.config import EventsConfig
from slotwise.proxy.events.endpoints import events_routes
from slotwise.proxy.state import open_store


def build_app(store_url: str, config: EventsConfig, static: Path | None = None) -> Starlette:
    """The collector app; the store opens and closes with the app's lifespan."""
    store = open_store(store_url)
    collector = EventCollector(store, config)
    routes: list[BaseRoute] = [Mount("/_sw", routes=events_routes(collector))]
    if static is not None:
        routes.append(Mount("/", app=StaticFiles(directory=static, html=True)))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with store, collector:
            yield

    return Starlette(routes=routes, lifespan=lifespan)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slotwise.proxy.events.serve")
    parser.add_argument("--store", help="state store URL (store.url; default memory://)")
    parser.add_argument("--config", type=Path, help="slotwise.toml to read")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8077)
    parser.add_argument("--static", type=Path, help="serve this directory at /")
    args = parser.parse_args(argv)
    import uvicorn

    from slotwise.proxy.config import ConfigError, load_settings

    try:
        settings = load_settings(
            args.config, overrides={"store.url": args.store}, flags={"store.url": "--store"}
        )
    except ConfigError as exc:
        parser.exit(exc.exit_code, f"{parser.prog}: {exc.render()}\n")
    app = build_app(settings.store.url, settings.events, args.static)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
