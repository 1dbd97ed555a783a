"""``slotwise learn``: the one learner that writes models the proxies hot-reload.

Two sources:

- ``--store URL`` (the shared state store: sqlite:///..., redis://...): a worker that reads
  the ``decisions`` and ``events`` logs as consumer group ``learner``, joins rewards within
  ``--window``, learns, and publishes a version every ``--publish-every`` seconds until
  stopped (Ctrl-C / SIGTERM publish once more). ``--once`` drains what is there and exits.
- ``--log FILE``: a JSONL decision log (docs/learning.md), learned in one pass and published
  as one version per campaign.

The campaigns (variants, attributes, exploration, goal) come from the policy files, so the
learner builds exactly the features the proxies score with.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from slotwise.proxy.cli import EXIT_FAILED, EXIT_OK, UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policies", nargs="+", required=True, metavar="PATH")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--store", metavar="URL", help="shared state store URL")
    source.add_argument("--log", type=Path, metavar="FILE", help="JSONL decision log")
    parser.add_argument("--models", type=Path, default=None, help="models directory")
    parser.add_argument("--window", type=float, default=3600.0, help="reward window, seconds")
    parser.add_argument("--publish-every", type=float, default=60.0, metavar="SECONDS")
    parser.add_argument("--consumer", default="learner-1", help="consumer name in the group")
    parser.add_argument("--once", action="store_true", help="drain the store once and exit")


def run(args: argparse.Namespace) -> int:
    from slotwise.dsl.errors import PolicyError
    from slotwise.dsl.loader import load_policy_set
    from slotwise.dsl.schema_file import default_schema
    from slotwise.proxy.bandit.campaign import from_compiled
    from slotwise.proxy.bandit.errors import BanditError
    from slotwise.proxy.bandit.store import ModelStore, default_models_dir
    from slotwise.proxy.learn.learner import Learner

    if args.window <= 0 or args.publish_every <= 0:
        raise UsageError("--window and --publish-every must be positive")
    try:
        policy = load_policy_set(args.policies, default_schema())
    except PolicyError as error:
        print("\n".join(d.render() for d in error.diagnostics), file=sys.stderr)
        return EXIT_FAILED
    campaigns = [from_compiled(c) for c in policy.campaigns]
    if not campaigns:
        raise UsageError("the policy files declare no campaign: nothing to learn")
    store = ModelStore(args.models or default_models_dir())
    store.root.mkdir(parents=True, exist_ok=True)
    learner = Learner(campaigns, store)
    for warning in learner.warnings:
        print(f"slotwise learn: warning: {warning}", file=sys.stderr)
    goals = {c.name: c.goal for c in campaigns}
    try:
        if args.log is not None:
            return _learn_log(args, learner, goals)
        return asyncio.run(_learn_store(args, learner, goals))
    except BanditError as error:
        print(f"slotwise learn: {error}", file=sys.stderr)
        return EXIT_FAILED


def _goal_for(goals: dict[str, Any]) -> Any:
    from slotwise.proxy.learn.reward import Goal

    return lambda campaign: goals.get(campaign, Goal())


def _learn_log(args: argparse.Namespace, learner: Any, goals: dict[str, Any]) -> int:
    from slotwise.proxy.bandit.errors import BanditError
    from slotwise.proxy.learn.join import join_log
    from slotwise.proxy.learn.log import read_log

    try:
        joined, stats = join_log(read_log(args.log), _goal_for(goals), window=args.window)
    except BanditError as error:
        if error.code == "unreadable_log":
            raise UsageError(str(error)) from error
        raise
    for record in joined:
        learner.learn(record)
    for info in learner.publish():
        print(f"{info.campaign}: published {info.label} ({info.examples} examples)")
    print(
        f"{learner.stats.examples} decisions learned, {learner.stats.skipped_holdout} holdout,"
        f" {learner.stats.skipped_unknown} skipped; {stats.late} late rewards dropped"
    )
    return EXIT_OK


async def _learn_store(args: argparse.Namespace, learner: Any, goals: dict[str, Any]) -> int:
    from slotwise.proxy.learn.join import RewardJoiner
    from slotwise.proxy.learn.service import LearnerService
    from slotwise.proxy.state import StoreError, open_store

    joiner = RewardJoiner(_goal_for(goals), window=args.window)
    try:
        store = open_store(args.store)
    except StoreError as error:
        raise UsageError(str(error)) from error
    async with store:
        service = LearnerService(
            store, learner, joiner, consumer=args.consumer, publish_every=args.publish_every
        )
        if args.once:
            await service.run_once()  # the first read recovers unacknowledged entries
            while await service.run_once():
                pass
            await service.publish()
        else:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            await service.run(stop)
    for info in service.stats.published:
        print(f"{info.campaign}: published {info.label} ({info.examples} examples)")
    print(
        f"{service.stats.read_decisions} decisions and {service.stats.read_events} events read;"
        f" {learner.stats.examples} learned, {joiner.pending} still inside their window"
    )
    return EXIT_OK
