"""``slotwise evaluate LOG``: offline evaluation of candidate policies on a decision log.

The log is JSON Lines in the documented format (docs/learning.md): decision and reward records
(joined here within ``--window``), decisions with an inline ``outcome``, or joined records.
Candidates: ``uniform`` (rules only), ``upstream`` (never personalise), ``model`` and
``model-greedy`` (the CURRENT saved model of the campaign in ``--models``), and
``fixed:slot=variant,...``. Prints IPS, SNIPS and doubly robust estimates of the mean reward
per decision with 95% intervals, beside the logging policy's own mean.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from slotwise.proxy.cli import EXIT_FAILED, EXIT_OK, UsageError

CANDIDATES = ("uniform", "upstream", "model", "model-greedy", "fixed:SLOT=VARIANT,...")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("log", type=Path, help="decision log (JSONL)")
    parser.add_argument(
        "--candidate",
        action="append",
        default=None,
        help=f"policy to evaluate, repeatable: {', '.join(CANDIDATES)}"
        " (default: uniform and upstream)",
    )
    parser.add_argument("--campaign", help="which campaign of the log (needed if several)")
    parser.add_argument("--models", type=Path, default=None, help="models directory (for model)")
    parser.add_argument(
        "--policies",
        nargs="+",
        metavar="PATH",
        help="policy files declaring the campaign (for model: variant attributes are features)",
    )
    parser.add_argument(
        "--window", type=float, default=3600.0, help="reward window in seconds (default 3600)"
    )
    parser.add_argument(
        "--goal",
        default="clicks=1",
        help="reward for decision+reward logs, e.g. clicks=1,conversions=10 (default clicks=1)",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")


def run(args: argparse.Namespace) -> int:
    from slotwise.proxy.bandit.errors import BanditError
    from slotwise.proxy.learn.evaluation import evaluate, logged_value
    from slotwise.proxy.learn.join import join_log
    from slotwise.proxy.learn.log import read_log

    goal = _goal(args.goal)
    try:
        joined, stats = join_log(read_log(args.log), lambda _: goal, window=args.window)
    except BanditError as error:
        if error.code == "unreadable_log":
            raise UsageError(str(error)) from error
        print(f"slotwise evaluate: {error}")
        return EXIT_FAILED
    joined = [j for j in joined if j.decision.fail_open is None]
    campaigns = sorted({j.decision.campaign for j in joined})
    if not campaigns:
        print(f"slotwise evaluate: {args.log} holds no served decisions")
        return EXIT_FAILED
    campaign = args.campaign or (campaigns[0] if len(campaigns) == 1 else None)
    if campaign is None or campaign not in campaigns:
        raise UsageError(f"choose a campaign with --campaign: the log has {', '.join(campaigns)}")
    records = [j for j in joined if j.decision.campaign == campaign]
    candidates = [
        _candidate(name, campaign, records, args)
        for name in args.candidate or ("uniform", "upstream")
    ]
    results = [evaluate(candidate, records) for candidate in candidates]
    logged = logged_value(records)
    if args.format == "json":
        print(
            json.dumps(
                {
                    "campaign": campaign,
                    "decisions": len(records),
                    "late_rewards": stats.late,
                    "unmatched_rewards": stats.unmatched,
                    "logged": logged.as_dict(),
                    "candidates": [r.as_dict() for r in results],
                },
                indent=2,
            )
        )
        return EXIT_OK
    print(f"campaign {campaign}: {len(records)} decisions ({stats.late} late rewards dropped)")
    print(f"logging policy: {logged.value:.4f} ({logged.low:.4f} .. {logged.high:.4f})")
    print(f"{'candidate':<24} {'IPS':>22} {'SNIPS':>22} {'DR':>22} {'support':>8}")
    for r in results:
        cells = [f"{e.value:.4f} [{e.low:.4f},{e.high:.4f}]" for e in (r.ips, r.snips, r.dr)]
        print(f"{r.candidate:<24} {cells[0]:>22} {cells[1]:>22} {cells[2]:>22} {r.support:>8.1%}")
    return EXIT_OK


def _goal(text: str) -> Any:
    from slotwise.proxy.bandit.errors import BanditError
    from slotwise.proxy.learn.reward import Goal

    weights: dict[str, float] = {}
    for part in text.split(","):
        term, sep, weight = part.partition("=")
        try:
            weights[term.strip()] = float(weight) if sep else 1.0
        except ValueError:
            raise UsageError(
                f"--goal: {weight!r} is not a number (use clicks=1,conversions=10)"
            ) from None
    try:
        return Goal(weights)
    except BanditError as error:
        raise UsageError(f"--goal: {error.message}") from error


def _candidate(name: str, campaign: str, records: list[Any], args: argparse.Namespace) -> Any:
    from slotwise.proxy.bandit.errors import BanditError
    from slotwise.proxy.bandit.exploration import explore_from_policy
    from slotwise.proxy.bandit.features import FeatureMap
    from slotwise.proxy.bandit.runtime import BanditRuntime
    from slotwise.proxy.bandit.store import ModelStore, default_models_dir
    from slotwise.proxy.learn.evaluation import (
        FixedCandidate,
        ModelCandidate,
        UniformCandidate,
        UpstreamCandidate,
        campaign_from_log,
    )

    if name == "uniform":
        return UniformCandidate()
    if name == "upstream":
        return UpstreamCandidate()
    if name.startswith("fixed:"):
        choices = dict(p.split("=", 1) for p in name[6:].split(",") if "=" in p)
        if not choices:
            raise UsageError("fixed candidates look like fixed:headline=h2,image=city")
        return FixedCandidate(choices, name)
    if name in ("model", "model-greedy"):
        store = ModelStore(args.models or default_models_dir())
        try:
            info = store.current(campaign)
        except BanditError as error:
            raise UsageError(str(error)) from error
        if info is None:
            raise UsageError(f"no saved model for campaign {campaign} in {store.root}")
        bandit_campaign = _policy_campaign(args.policies, campaign)
        if bandit_campaign is None:
            print(
                "slotwise evaluate: note: without --policies the variants come from the log"
                " and their attributes are unknown: the model scores them without those"
                " features",
                file=sys.stderr,
            )
            bandit_campaign = campaign_from_log(records, campaign)
        explore = explore_from_policy(info.family, info.explore_parameter)
        bandit_campaign = dataclasses.replace(bandit_campaign, explore=explore)
        runtime = BanditRuntime(store)
        runtime.install([bandit_campaign])
        if runtime.errors:
            raise UsageError(str(runtime.errors[0]))
        model = runtime.snapshot.models[campaign]
        return ModelCandidate(model, FeatureMap(), greedy=name == "model-greedy")
    raise UsageError(f"unknown candidate {name!r}; use {', '.join(CANDIDATES)}")


def _policy_campaign(paths: list[str] | None, campaign: str) -> Any:
    if not paths:
        return None
    from slotwise.dsl.errors import PolicyError
    from slotwise.dsl.loader import load_policy_set
    from slotwise.dsl.schema_file import default_schema
    from slotwise.proxy.bandit.campaign import from_compiled

    try:
        policy = load_policy_set(paths, default_schema())
    except PolicyError as error:
        raise UsageError(f"--policies: {error}") from error
    for compiled in policy.campaigns:
        if compiled.name == campaign:
            return from_compiled(compiled)
    raise UsageError(f"--policies declare no campaign {campaign}")
