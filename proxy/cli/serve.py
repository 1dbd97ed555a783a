"""`slotwise serve`: run the edge proxy on granian (one worker by default).

Configuration comes from ``--config slotwise.toml`` (else ``$SLOTWISE_CONFIG``), then
``SLOTWISE_*`` variables, then the flags; it is validated once, here, before any worker starts,
and the policies are compiled once so that a broken policy set stops the start with its
diagnostics instead of serving nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slotwise.proxy.cli import EXIT_FAILED, EXIT_OK, UsageError, add_config_option, read_settings
from slotwise.proxy.logs import configure

log = logging.getLogger("slotwise.serve")

if TYPE_CHECKING:
    from slotwise.proxy.config import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--upstream", metavar="URL", help="the ad server / storefront origin")
    parser.add_argument("--policies", metavar="DIR", help="directory of *.sw policy files")
    add_config_option(parser)
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8080)")
    parser.add_argument("--workers", type=int, help="worker processes (default 1)")
    parser.add_argument("--store", metavar="URL", help="state store URL (default memory://)")
    parser.add_argument(
        "--models", metavar="DIR", help="bandit model store the learner publishes to (hot-reloaded)"
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="check the configuration, policies, plugins, store and address, then exit (0: ok)",
    )
    parser.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="log.level"
    )


def run(args: argparse.Namespace) -> int:
    flags = {
        "upstream.url": ("--upstream", args.upstream),
        "proxy.policies": ("--policies", args.policies),
        "proxy.host": ("--host", args.host),
        "proxy.port": ("--port", args.port),
        "proxy.workers": ("--workers", args.workers),
        "store.url": ("--store", args.store),
        "bandit.models_dir": ("--models", args.models),
        "log.level": ("--log-level", args.log_level),
    }
    settings = read_settings(args, flags)
    if not settings.upstream.url:
        raise UsageError("no upstream: pass --upstream URL or set upstream.url in slotwise.toml")
    policies = Path(settings.proxy.policies)
    if not policies.is_dir():
        why = "is not a directory" if policies.exists() else "does not exist"
        raise UsageError(f"policy directory {policies} {why} (pass --policies DIR)")
    from slotwise.proxy.state import StoreConfigError, open_store

    try:
        open_store(settings.store.url)  # parses and validates the URL; connects nothing
    except StoreConfigError as exc:
        raise UsageError(f"--store / store.url: {exc}") from None
    notes: list[str] = []
    warnings: list[str] = []
    if settings.store.url.startswith("memory:"):
        if not settings.tracking.secret:  # each worker has its own memory: one key for all
            from slotwise.proxy.click_key import fresh_click_key

            settings = settings.replace(tracking_secret=fresh_click_key())
        notes.append(
            "store.url is memory://, decisions and events are lost on exit and each log keeps "
            "only its newest entries (memory://?max_log_entries=N, default 200,000); set "
            "--store sqlite:///path/state.db or redis://..."
        )
    if not settings.tracking.public_url:
        warnings.append(
            "tracking.public_url is not set, so tracker URLs are relative (/_sw/px?...) unless "
            "the request's Host is in tracking.allowed_hosts; ad markup rendered on another "
            "origin (OpenRTB, VAST, ad JSON) then reports no impressions or clicks: set "
            "tracking.public_url to the proxy's public origin"
        )
    configure(settings.log)
    for note in notes:
        log.info(note)
    for warning in warnings:
        log.warning(warning)
    problem = (
        _check_plugins(settings.plugins)
        or check_policies(policies)
        # the channels are checked where the sender runs (here, or `slotwise notify serve`)
        or (check_notify(settings, policies) if settings.notify.sender else None)
        or _check_catalogue(settings.catalogue.feed)
        or _check_store(settings.store.url)
        or _check_listen(settings.proxy.host, settings.proxy.port)
    )
    if problem is not None:
        print(problem, file=sys.stderr)
        return EXIT_FAILED
    if args.check_config:
        print(
            f"slotwise serve: the configuration is valid: upstream {settings.upstream.url}, "
            f"policies in {policies} compile, the store answers, "
            f"{settings.proxy.host}:{settings.proxy.port} is free"
        )
        return EXIT_OK
    return _serve(settings)


def _check_plugins(tables: Mapping[str, Mapping[str, Any]]) -> str | None:
    """Build the providers once from their [plugins.NAME] tables: every problem, named."""
    from slotwise.plugins.errors import PluginError
    from slotwise.plugins.registry import load_providers

    try:
        load_providers(tables)
    except PluginError as exc:
        return f"slotwise serve: the signal providers cannot start:\n{exc}"
    return None


def _check_catalogue(feed: str) -> str | None:
    """Read the catalogue feed once: a bad item would fail every worker's start."""
    if not feed:
        return None
    from pathlib import Path

    from slotwise.proxy.catalogue import CatalogueError, parse_feed

    try:
        parse_feed(Path(feed).read_bytes(), feed)
    except OSError as exc:
        why = exc.strerror or str(exc)
        return f"slotwise serve: cannot read the catalogue feed (catalogue.feed) {feed}: {why}"
    except CatalogueError as exc:
        return f"slotwise serve: the catalogue feed (catalogue.feed) is invalid: {exc}"
    return None


def _check_store(url: str) -> str | None:
    """Open the store once and ping it: every worker would fail its start on it otherwise,
    each saying so."""
    import asyncio

    from slotwise.proxy.state import StoreError, StoreUnavailable, open_store

    async def reach() -> None:
        async with open_store(url) as store:  # start() itself reached it, with write_timeout
            # ping() has the request path's short timeout (50 ms on Redis): one slow answer
            # from a busy store is no reason to refuse to start, five in a row are
            for attempt in range(5):
                try:
                    await store.ping()
                    return
                except StoreUnavailable:
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.2)

    try:
        asyncio.run(reach())
    except (StoreError, OSError) as exc:
        return f"slotwise serve: the store cannot be used (--store / store.url): {exc}"
    return None


def _check_listen(host: str, port: int) -> str | None:
    """Bind the address once, as the server will (SO_REUSEADDR): a port in use or an address
    this machine does not have is named here, not in a worker's backtrace."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
            return (
                f"slotwise serve: cannot listen on {where}: {exc.strerror or exc} "
                "(--host / --port; is another server running there?)"
            )
    return None


def check_policies(directory: Path, command: str = "serve") -> str | None:
    """Compile once before starting: the diagnostics, or None when the set is good."""
    from slotwise.plugins.registry import load_schema
    from slotwise.proxy.policy_snapshot import compile_directory

    try:
        compile_directory(directory, load_schema())
    except Exception as exc:
        render = getattr(exc, "render", None)  # PolicyError: file:line:col: code: message
        detail = render() if callable(render) else str(exc)
        return f"slotwise {command}: the policies in {directory} do not compile:\n{detail}"
    return None


def check_notify(settings: Settings, directory: Path, command: str = "serve") -> str | None:
    """Every webhook endpoint and e-mail template the policies name exists (and every
    [webhooks.NAME] table is usable): the problem, or None."""
    from slotwise.plugins.registry import load_schema
    from slotwise.proxy.notify.errors import NotifyError
    from slotwise.proxy.notify.runtime import check
    from slotwise.proxy.policy_snapshot import compile_directory

    try:
        check(settings, compile_directory(directory, load_schema()))
    except NotifyError as exc:
        elsewhere = (
            "\n(or set notify.sender = false here and run `slotwise notify serve` where the "
            "channels are configured)"
            if command == "serve"
            else ""
        )
        return (
            f"slotwise {command}: notifications cannot be sent as configured:\n{exc.render()}"
            + elsewhere
        )
    return None


def _serve(settings: Settings) -> int:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.log import LogLevels

    from slotwise.proxy.logs import granian_config
    from slotwise.proxy.metrics_share import clear

    made = None
    if settings.proxy.metrics_dir:
        clear(Path(settings.proxy.metrics_dir))  # an earlier run's counts are not this one's
    elif settings.proxy.workers > 1:  # a scrape reaches one worker: they share their numbers
        made = tempfile.mkdtemp(prefix="slotwise-metrics-")
        settings = settings.replace(proxy_metrics_dir=made)
    # workers are separate processes: they read the validated settings from the environment
    os.environ.update(settings.to_env())
    os.environ.pop("SLOTWISE_CONFIG", None)
    log.info(
        "proxying http://%s:%s -> %s (%s worker(s), policies from %s)",
        settings.proxy.host,
        settings.proxy.port,
        settings.upstream.url,
        settings.proxy.workers,
        settings.proxy.policies,
    )
    server = Granian(
        "slotwise.proxy.app:app_from_env",
        address=settings.proxy.host,
        port=settings.proxy.port,
        interface=Interfaces.ASGI,
        workers=settings.proxy.workers,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        websockets=False,
        factory=True,
        log_level=LogLevels(settings.log.level),
        log_dictconfig=granian_config(settings.log),
        backlog=2048,
        # a dead worker (OOM kill, native crash) is replaced at once while the others keep
        # serving; granian itself stops on a crash loop, so an orchestrator sees the failure
        respawn_failed_workers=settings.proxy.respawn_workers,
        # granian waits for a worker to stop without limit by default: one that missed its
        # SIGTERM (sent while it was still starting, on a loaded machine) held the server up
        workers_kill_timeout=settings.proxy.stop_timeout,
    )
    try:
        server.serve()
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
    return 0
