"""``slotwise learn``: the one learner that writes models the proxies hot-reload.

Two sources:

- ``--store URL`` (the shared state store: sqlite:///..., redis://...; else ``store.url`` of
  the configuration, as the proxies read it): a worker that reads the ``decisions`` and
  ``events`` logs as consumer group ``learner``, joins rewards within ``--window``, learns, and
  publishes a version every ``--publish-every`` seconds until stopped (Ctrl-C / SIGTERM
  publish once more). ``--once`` drains what is there and exits.
- ``--log FILE [FILE ...]``: JSONL decision logs (docs/learning.md), merged by time (e.g.
  ``slotwise export decisions`` and ``slotwise export events``: relearning what the store
  retains, docs/operations.md), learned in one pass as they are read and published as one
  version per campaign.

The campaigns (variants, attributes, exploration, goal) come from the policy files
(``--policies``, else ``proxy.policies``), so the learner builds exactly the features the
proxies score with; the models go to ``--models``, else ``bandit.models_dir``. A CURRENT model
it cannot continue from (corrupt, unreadable metadata, another exploration family, a CURRENT
naming no version) is a warning: it trains from scratch and publishes the result as the next
version. Bad input (a log line, the store, the models path) is refused before anything is
written.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import math
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from slotwise.proxy.cli import EXIT_FAILED, EXIT_OK, UsageError, add_config_option, read_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policies", nargs="+", metavar="PATH", help="policy files or folders (proxy.policies)"
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--store", metavar="URL", help="shared state store URL (store.url)")
    source.add_argument(
        "--log",
        type=Path,
        nargs="+",
        metavar="FILE",
        help="JSONL decision logs, merged by time (e.g. the exports of decisions and events)",
    )
    parser.add_argument("--models", type=Path, default=None, help="models (bandit.models_dir)")
    add_config_option(parser)
    parser.add_argument("--window", type=float, default=3600.0, help="reward window, seconds")
    parser.add_argument("--publish-every", type=float, default=60.0, metavar="SECONDS")
    parser.add_argument("--consumer", default="learner-1", help="consumer name in the group")
    parser.add_argument("--once", action="store_true", help="drain the store once and exit")
    parser.add_argument(
        "--serve",
        metavar="[HOST:]PORT",
        help="run as a service with GET /health and /metrics on this address (with --store)",
    )


def run(args: argparse.Namespace) -> int:
    from slotwise.dsl.loader import load_policy_set
    from slotwise.plugins.registry import default_schema
    from slotwise.proxy.bandit.campaign import from_compiled
    from slotwise.proxy.bandit.store import ModelStore, models_dir
    from slotwise.proxy.offer_set import bandit_offers
    from slotwise.proxy.offers_config import offers_config

    for option, value in (("--window", args.window), ("--publish-every", args.publish_every)):
        if not (math.isfinite(value) and value > 0):
            raise UsageError(f"{option} must be a positive number of seconds, got {value}")
    settings = read_settings(
        args, {"store.url": ("--store", args.store), "bandit.models_dir": ("--models", args.models)}
    )
    listen = _listen_address(args.serve) if args.serve else None
    if listen is not None and (args.log is not None or args.once):
        raise UsageError("--serve runs the learner on the store: it takes neither --log nor --once")
    if args.log is None and args.store is None and settings.store.url.startswith("memory:"):
        raise UsageError(
            "nothing to learn from: pass --log FILE, or --store URL (or store.url in --config)"
            " naming the sqlite:/// or redis:// store the proxies write"
        )
    policy = load_policy_set(args.policies or [settings.proxy.policies], default_schema())
    campaigns = [from_compiled(c) for c in policy.campaigns]
    campaigns += [bandit_offers(o) for o in policy.offers]
    # a shop with recommended lists alone has nothing to train, but its live dashboard (the
    # lists' CTR by arm, the storefront's sessions) is computed here all the same
    dashboard_only = bool(policy.recommendations or policy.reranks) and (
        settings.dashboard.enabled and args.log is None and not args.once
    )
    if not campaigns and not dashboard_only:
        raise UsageError("the policy files declare no campaign or offer set: nothing to learn")
    root = models_dir(settings.bandit.models_dir)
    _check_models_dir(root, [c.name for c in campaigns])
    models = ModelStore(root)
    goals = {c.name: c.goal for c in campaigns}
    args.offers = offers_config(settings.offers)  # purchases: currencies, shipping, margins
    if args.log is not None:
        return _learn_log(args, campaigns, models, goals)
    from slotwise.proxy.logs import configure

    configure(settings.log)
    service = _Service(listen, settings.bandit.models_in_store)
    monitor = _guardrail_monitor(settings, policy) if settings.guardrail.enabled else None
    return asyncio.run(
        _learn_store(settings.store.url, args, campaigns, models, goals, service, monitor, settings)
    )


def _listen_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--serve {text}: write [HOST:]PORT, e.g. 127.0.0.1:9464 or 9464")
    return host.strip("[]") or "127.0.0.1", int(port)


@dataclasses.dataclass(frozen=True, slots=True)
class _Service:
    listen: tuple[str, int] | None  # --serve: the endpoints' address
    models_in_store: bool  # bandit.models_in_store: publish to the state store too


def _guardrail_monitor(settings: Any, policy: Any) -> Any:
    """The guardrails of the policy's campaigns: on unless ``guardrail off``, with the
    configuration's minimum sample unless ``guardrail min N``."""
    from slotwise.proxy.guardrail.monitor import Monitor, Rule

    rules = {
        c.name: Rule(
            c.guardrail.enabled, c.guardrail.min_decisions or settings.guardrail.min_decisions
        )
        for c in policy.campaigns
    }
    goals = {c.name: str(c.goal) for c in policy.campaigns}
    return Monitor(rules, alpha=settings.guardrail.alpha, goals=goals)


def _check_models_dir(root: Path, campaigns: list[str]) -> None:
    """Refuse a --models path that publishing could not create, before anything is learned."""
    existing = next((p for p in (root, *root.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise UsageError(
            f"--models {root}: {existing} is a file, not a directory; "
            "name a models directory (it is created if missing)"
        )
    for name in campaigns:
        folder = root / name
        if folder.exists() and not folder.is_dir():
            raise UsageError(
                f"--models {root}: {folder} is a file where campaign {name}'s model folder"
                " belongs; move it away or choose another models directory"
            )


@contextlib.contextmanager
def _writing_models(root: Path) -> Iterator[None]:
    """Publishing's OS errors (permissions, a full disk) as an error naming --models."""
    from slotwise.proxy.bandit.errors import BanditError

    try:
        yield
    except OSError as error:
        raise BanditError(
            "models_unwritable",
            f"cannot write models under --models {root}: {error};"
            " check its permissions and free space",
        ) from error


def _start_learner(campaigns: list[Any], models: Any) -> Any:
    from slotwise.proxy.learn.learner import Learner

    learner = Learner(campaigns, models)
    _print_warnings(learner.warnings)
    learner.warnings.clear()
    return learner


def _print_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        print(f"slotwise learn: warning: {warning}", file=sys.stderr)


def _goal_for(goals: dict[str, Any]) -> Any:
    from slotwise.types import DEFAULT_GOAL

    return lambda campaign: goals.get(campaign, DEFAULT_GOAL)


def _learn_log(
    args: argparse.Namespace, campaigns: list[Any], models: Any, goals: dict[str, Any]
) -> int:
    from slotwise.proxy.learn.join import RewardJoiner, iter_join
    from slotwise.proxy.learn.log import read_logs

    # learned as it is joined (memory holds the open windows, not the log); the whole log is
    # read and checked before anything is written under --models
    joiner = RewardJoiner(_goal_for(goals), window=args.window)
    learner = _start_learner(campaigns, models)
    for record in iter_join(read_logs(args.log), joiner):
        learner.learn(record)
    stats = joiner.stats
    with _writing_models(models.root):
        published = learner.publish()
    _print_warnings(learner.warnings)
    for info in published:
        print(f"{info.campaign}: published {info.label} ({info.examples} examples)")
    print(
        f"{learner.stats.examples} decisions learned, {learner.stats.skipped_holdout} holdout,"
        f" {learner.stats.skipped_unknown} skipped; {stats.late} late rewards dropped"
    )
    return EXIT_OK


def _open_state_store(url: str) -> Any:
    """The shared store, refusing one the learner cannot read the proxies' logs from: a
    private memory:// or a sqlite file that is not there (opening it would create it)."""
    from slotwise.proxy.state import StoreError, open_store, redact
    from slotwise.proxy.state.sqlite import SQLiteStore

    if url.startswith("memory:"):
        raise UsageError(
            "--store memory:// is private to one process: the learner would read an empty log;"
            " pass the sqlite:/// or redis:// URL the proxies write (`slotwise serve --store`)"
        )
    try:
        store = open_store(url)  # parses only: nothing is opened or created yet
    except StoreError as error:
        raise UsageError(f"--store: {error}") from error
    if isinstance(store, SQLiteStore) and not store.path.exists():
        raise UsageError(
            f"--store {redact(url)}: no state database at {store.path}; the learner reads the"
            " database the proxies write (`slotwise serve --store URL`): check the path"
        )
    return store


def _store_advice(url: str) -> str:
    if url.startswith("sqlite://"):
        return "check that the path names the state database file the proxies write"
    if url.startswith("redis"):
        return "check that redis is running at that address and reachable from here"
    return "check the URL and that the store is up"


async def _learn_store(
    url: str,
    args: argparse.Namespace,
    campaigns: list[Any],
    models: Any,
    goals: dict[str, Any],
    how: _Service,
    monitor: Any = None,
    settings: Any = None,
) -> int:
    from slotwise.proxy.learn.join import RewardJoiner
    from slotwise.proxy.state import StoreError, redact

    joiner = RewardJoiner(_goal_for(goals), window=args.window)
    store = _open_state_store(url)
    try:
        async with store:
            learner = _start_learner(campaigns, models)
            with _writing_models(models.root):
                guardrails = None
                if monitor is not None:
                    from slotwise.proxy.guardrail.alert import Guardrails

                    guardrails = Guardrails(
                        store, monitor, webhook_url=settings.guardrail.webhook_url
                    )
                service = await _serve(args, store, learner, joiner, how, guardrails, settings)
    except StoreError as error:
        # entries are acknowledged only after a publish: a restart reads the rest again
        print(
            f"slotwise learn: --store {redact(url)}: {str(error).rstrip('.')};"
            f" {_store_advice(url)}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    _print_warnings(learner.warnings)
    for info in service.stats.published:
        print(f"{info.campaign}: published {info.label} ({info.examples} examples)")
    print(
        f"{service.stats.read_decisions} decisions and {service.stats.read_events} events read;"
        f" {learner.stats.examples} learned, {joiner.pending} still inside their window"
    )
    return EXIT_OK


async def _serve(
    args: argparse.Namespace,
    store: Any,
    learner: Any,
    joiner: Any,
    how: _Service,
    guardrails: Any = None,
    settings: Any = None,
) -> Any:
    from slotwise.proxy.bandit.mirror import ModelMirror
    from slotwise.proxy.learn.service import LearnerService

    service = LearnerService(
        store,
        learner,
        joiner,
        consumer=args.consumer,
        publish_every=args.publish_every,
        offers=args.offers,
        guardrails=guardrails,
    )
    mirror = ModelMirror(store, learner.store) if how.models_in_store else None
    if args.once:
        await service.run_once()  # the first read recovers unacknowledged entries
        while await service.run_once():
            pass
        if guardrails is not None:
            await guardrails.check(force=True)
        await service.publish()
        if mirror is not None:
            await mirror.push()
        return service
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    dashboard = _dashboard(store, settings)
    try:
        if how.listen is None and mirror is None:
            await service.run(stop)
        else:
            from slotwise.proxy.learn.loop import run_service

            await run_service(service, stop, mirror, how.listen)
    finally:
        if dashboard is not None:
            dashboard.stop()
    return service


def _dashboard(store: Any, settings: Any) -> Any:
    """The live dashboard the proxies show: computed here, beside the proxies, published to
    the store every ``dashboard.refresh_interval`` (slotwise.proxy.report.live)."""
    if settings is None:
        return None
    if not settings.dashboard.enabled:
        print("slotwise learn: the live dashboard is off (dashboard.enabled = false)", flush=True)
        return None
    from slotwise.proxy.report.live import LiveReport

    d = settings.dashboard
    dashboard = LiveReport(
        store,
        window=d.window,
        join_window=d.join_window,
        refresh=d.refresh_interval,
        segment_by=d.segment_by,
        publish=True,
    )
    dashboard.start()
    return dashboard
