"""``slotwise notify serve|dead-letters|replay``: the notification sender and its dead letters.

``serve`` runs the sender on its own (for proxies run with ``notify.sender = false``, or beside
them: a lease in the store keeps one sender active); it checks first that every endpoint and
template the policies (``--policies`` / ``proxy.policies``) name exists, and stops on SIGTERM
or Ctrl-C, giving its lease up. ``dead-letters`` lists the notifications that could not be
delivered, with why; ``replay KEY`` (or ``--all``) sends them again, through the active sender.
docs/notifications.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from slotwise.proxy.cli import EXIT_FAILED, EXIT_OK, UsageError, add_config_option, read_settings

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from slotwise.proxy.config import Settings
    from slotwise.proxy.state.base import Store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    serve = actions.add_parser("serve", help="run the notification sender")
    serve.add_argument("--policies", metavar="DIR", help="policies to check the names of")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    listing = actions.add_parser("dead-letters", help="list notifications that were not sent")
    listing.add_argument("--format", choices=("text", "json"), default="text")
    replay = actions.add_parser("replay", help="send dead letters again")
    replay.add_argument("key", nargs="?", help="the idempotency key of one dead letter")
    replay.add_argument("--all", action="store_true", help="every dead letter")
    for action in (serve, listing, replay):
        add_config_option(action)
        action.add_argument("--store", metavar="URL", help="state store URL (default: store.url)")


def run(args: argparse.Namespace) -> int:
    flags = {"store.url": ("--store", args.store)}
    if args.action == "serve":
        flags["proxy.policies"] = ("--policies", args.policies)
    settings = read_settings(args, flags)
    _check_store_url(settings.store.url)
    if args.action == "serve":
        return _serve(settings, args.log_level)
    if args.action == "dead-letters":
        return _run_store(settings, lambda store: _list(store, args.format))
    if bool(args.key) == bool(args.all):
        raise UsageError("replay: give one KEY or --all")
    return _run_store(settings, lambda store: _replay(store, args.key))


def _check_store_url(url: str) -> None:
    from slotwise.proxy.state import StoreConfigError, open_store

    try:
        open_store(url)
    except StoreConfigError as exc:
        raise UsageError(f"--store / store.url: {exc}") from None
    if url.startswith("memory:"):
        raise UsageError(
            "the store is memory://, which no other process shares: pass --store (or set "
            "store.url) to the proxies' sqlite:/// or redis:// store"
        )


def _run_store(settings: Settings, action: Callable[[Store], Awaitable[int]]) -> int:
    import asyncio

    from slotwise.proxy.learn.export import reading_store

    async def main() -> int:
        # a missing sqlite file is refused (store_not_found), not created empty
        async with reading_store(settings.store.url) as store:
            return await action(store)

    return asyncio.run(main())


async def _list(store: Store, fmt: str) -> int:
    from slotwise.proxy.notify.schedule import dead_letters

    letters = await dead_letters(store)
    if fmt == "json":
        rows = [
            {
                "key": x.key,
                "user_id": x.subject,
                "trigger": x.notification.trigger if x.notification else None,
                "channel": x.notification.channel if x.notification else None,
                "name": x.notification.template if x.notification else None,
                "reason": x.reason,
                "attempts": x.attempts,
                "at": x.at,
                "replayable": x.notification is not None,
            }
            for x in letters
        ]
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not letters:
        print("no dead letters")
        return EXIT_OK
    for x in letters:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(x.at))
        what = f"{x.notification.channel} {x.notification.template!r}" if x.notification else "-"
        print(f"{when}Z  {x.key}  {what}  attempts={x.attempts}  {x.reason}")
    return EXIT_OK


async def _replay(store: Store, key: str | None) -> int:
    from slotwise.proxy.notify.errors import NotifyError
    from slotwise.proxy.notify.schedule import dead_letters, request_replay

    letters = await dead_letters(store)
    if key is not None:
        letters = [x for x in letters if x.key == key]
        if not letters:
            raise NotifyError(
                f"no dead letter with key {key!r}",
                code="unknown_dead_letter",
                hint="slotwise notify dead-letters lists them",
            )
        if letters[0].notification is None:
            raise NotifyError(
                f"{key} is an outbox record that does not decode: it cannot be sent",
                code="unknown_dead_letter",
            )
    count = await request_replay(store, letters, time.time())
    print(f"replaying {count} notification(s); the active sender sends them within a round")
    return EXIT_OK


def _serve(settings: Settings, log_level: str) -> int:
    import asyncio
    import logging
    import signal

    from slotwise.proxy.cli.serve import check_notify, check_policies
    from slotwise.proxy.notify.runtime import build_sender, trigger_check
    from slotwise.proxy.state import open_store

    directory = Path(settings.proxy.policies)
    policy = None
    if directory.is_dir():
        problem = check_policies(directory, "notify") or check_notify(settings, directory, "notify")
        if problem is not None:
            print(problem, file=sys.stderr)
            return EXIT_FAILED
        from slotwise.plugins.registry import load_schema
        from slotwise.proxy.policy_snapshot import compile_directory

        policy = compile_directory(directory, load_schema())  # the audiences' triggers
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        async with open_store(settings.store.url) as store:
            sender = build_sender(
                settings, store, still_due=trigger_check(store), policy=lambda: policy
            )
            print(
                f"slotwise notify: sender {sender.lease.owner} on {settings.store.url}",
                file=sys.stderr,
            )
            await sender.run(stop)

    asyncio.run(main())
    return EXIT_OK
