"""``slotwise evaluate LOG``: offline evaluation of candidate policies on a decision log.

The log is JSON Lines in the documented format (docs/learning.md): decision and reward records
(joined here within ``--window``), decisions with an inline ``outcome``, or joined records.
Candidates: ``uniform`` (rules only), ``upstream`` (never personalise), ``model`` and
``model-greedy`` (the CURRENT saved model of the campaign in ``--models``, else
``bandit.models_dir`` of the configuration), and
``fixed:slot=variant,...``. Prints IPS, SNIPS and doubly robust estimates of the mean reward
per decision with 95% intervals, beside the logging policy's own mean.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from slotwise.proxy.cli import EXIT_OK, UsageError, add_config_option, read_settings

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
    parser.add_argument(
        "--models", type=Path, default=None, help="models directory (for model; bandit.models_dir)"
    )
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
    add_config_option(parser)


def run(args: argparse.Namespace) -> int:
    if not (math.isfinite(args.window) and args.window > 0):
        raise UsageError(f"--window must be a positive number of seconds, got {args.window}")
    from slotwise.proxy.bandit.store import models_dir

    goal = _goal(args.goal)
    settings = read_settings(args, {"bandit.models_dir": ("--models", args.models)})
    return _evaluate(args, goal, models_dir(settings.bandit.models_dir))


def _evaluate(args: argparse.Namespace, goal: Any, models: Path) -> int:
    from slotwise.lab.evaluation import evaluate, logged_value
    from slotwise.proxy.learn.join import join_log
    from slotwise.proxy.learn.log import read_log

    joined, stats = join_log(read_log(args.log), lambda _: goal, window=args.window)
    joined = [j for j in joined if j.decision.fail_open is None]
    campaign = _campaign(args, sorted({j.decision.campaign for j in joined}))
    records = [j for j in joined if j.decision.campaign == campaign]
    candidates = [
        _candidate(name, campaign, records, args, models)
        for name in args.candidate or ("uniform", "upstream")
    ]
    results = [evaluate(candidate, records) for candidate in candidates]
    for result in results:
        if result.support == 0:
            print(
                f"slotwise evaluate: warning: candidate {result.candidate} chooses nothing the"
                " log can support (support 0%): its estimates rest on no decision; check that"
                " --policies and --models match the campaign that wrote the log",
                file=sys.stderr,
            )
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
        cells = [_cell(e) for e in (r.ips, r.snips, r.dr)]
        print(f"{r.candidate:<24} {cells[0]:>22} {cells[1]:>22} {cells[2]:>22} {r.support:>8.1%}")
    return EXIT_OK


def _cell(estimate: Any) -> str:
    if not estimate.defined:
        return "n/a"
    return f"{estimate.value:.4f} [{estimate.low:.4f},{estimate.high:.4f}]"


def _campaign(args: argparse.Namespace, campaigns: list[str]) -> str:
    from slotwise.proxy.bandit.errors import BanditError

    if not campaigns:
        raise BanditError("empty_log", f"{args.log} holds no served decisions to evaluate")
    if args.campaign is None:
        if len(campaigns) == 1:
            return campaigns[0]
        raise UsageError(f"choose a campaign with --campaign: the log has {', '.join(campaigns)}")
    if args.campaign not in campaigns:
        raise UsageError(
            f"--campaign {args.campaign}: the log has no served decision of it;"
            f" it has {', '.join(campaigns)}"
        )
    return str(args.campaign)


def _goal(text: str) -> Any:
    from slotwise.types import Goal

    example = "use clicks=1,conversions=10"
    weights: dict[str, float] = {}
    for part in text.split(","):
        term, sep, weight = (s.strip() for s in part.partition("="))
        if not term:
            raise UsageError(f"--goal {text!r}: a term is missing; {example}")
        try:
            value = float(weight) if sep else 1.0
        except ValueError:
            raise UsageError(f"--goal: {weight!r} is not a number ({example})") from None
        if not math.isfinite(value):
            raise UsageError(f"--goal: the weight of {term} must be a finite number, got {weight}")
        weights[term] = value
    try:
        return Goal.of(weights)
    except ValueError as error:  # a metric the goal does not know
        raise UsageError(f"--goal: {error}") from error


def _candidate(
    name: str, campaign: str, records: list[Any], args: argparse.Namespace, models: Path
) -> Any:
    from slotwise.lab.evaluation import UniformCandidate, UpstreamCandidate

    if name == "uniform":
        return UniformCandidate()
    if name == "upstream":
        return UpstreamCandidate()
    if name.startswith("fixed:"):
        return _fixed(name, campaign, records)
    if name in ("model", "model-greedy"):
        return _model(name, campaign, records, args, models)
    raise UsageError(f"unknown candidate {name!r}; use {', '.join(CANDIDATES)}")


def _fixed(name: str, campaign: str, records: list[Any]) -> Any:
    """fixed:slot=variant,... checked against the slots and variants the log knows."""
    from slotwise.lab.evaluation import FixedCandidate, campaign_from_log

    known = {
        s.name: [v.name for v in s.variants] for s in campaign_from_log(records, campaign).slots
    }
    choices: dict[str, str] = {}
    for part in name[len("fixed:") :].split(","):
        slot, sep, variant = (s.strip() for s in part.partition("="))
        if not (slot and sep and variant):
            raise UsageError(
                f"--candidate {name}: {part.strip()!r} is not slot=variant;"
                " fixed candidates look like fixed:headline=h2,image=city"
            )
        if slot in choices:
            raise UsageError(f"--candidate {name}: slot {slot} is named twice")
        if slot not in known:
            raise UsageError(
                f"--candidate {name}: campaign {campaign} has no slot {slot!r} in the log;"
                f" its slots: {_some(known)}"
            )
        if variant not in known[slot]:
            raise UsageError(
                f"--candidate {name}: slot {slot} of {campaign} has no variant {variant!r} in"
                f" the log; its variants: {_some(known[slot])}"
            )
        choices[slot] = variant
    return FixedCandidate(choices, name)


def _some(names: Iterable[str], limit: int = 20) -> str:
    names = list(names)
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _model(
    name: str, campaign: str, records: list[Any], args: argparse.Namespace, models: Path
) -> Any:
    from slotwise.lab.evaluation import ModelCandidate, campaign_from_log
    from slotwise.proxy.bandit.errors import BanditError
    from slotwise.proxy.bandit.exploration import explore_from_policy
    from slotwise.proxy.bandit.features import FeatureMap
    from slotwise.proxy.bandit.runtime import BanditRuntime
    from slotwise.proxy.bandit.store import ModelStore

    store = ModelStore(models)
    version = store.checked_current(campaign)  # a CURRENT naming nothing says why
    if version is None:
        raise UsageError(f"no saved model for campaign {campaign} in {store.root}")
    try:
        info = store.info(campaign, version)
    except BanditError as error:
        raise BanditError(
            error.code,
            f"{error.message}; CURRENT names it: roll back with"
            f" `slotwise model rollback {campaign}` or publish a new version",
        ) from error
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
        raise runtime.errors[0]
    model = runtime.snapshot.models[campaign]
    return ModelCandidate(model, FeatureMap(), greedy=name == "model-greedy")


def _policy_campaign(paths: list[str] | None, campaign: str) -> Any:
    if not paths:
        return None
    from slotwise.dsl.errors import PolicyError
    from slotwise.dsl.loader import load_policy_set
    from slotwise.plugins.registry import default_schema
    from slotwise.proxy.bandit.campaign import from_compiled

    try:
        policy = load_policy_set(paths, default_schema())
    except PolicyError as error:
        raise UsageError(f"--policies: {error}") from error
    for compiled in policy.campaigns:
        if compiled.name == campaign:
            return from_compiled(compiled)
    raise UsageError(f"--policies declare no campaign {campaign}")
