"""``slotwise evaluate LOG [LOG ...]``: offline evaluation of candidate policies on a decision log.

The log is JSON Lines in the documented format (docs/learning.md): decision and reward records
(joined here within ``--window``), decisions with an inline ``outcome``, or joined records;
several files (``slotwise export decisions`` and ``slotwise export events``) are merged by
time. A log that would make an estimate silently wrong is refused naming the line and the field
(slotwise.lab.evaluation_log). Candidates: ``uniform`` (rules only), ``upstream`` (never
personalise), ``model`` and ``model-greedy`` (the CURRENT saved model of the campaign in
``--models``, else ``bandit.models_dir`` of the configuration; refused on a log it learned
from unless ``--allow-training-log``), ``fixed:slot=variant,...`` and
``probabilities:FILE`` (a stochastic target policy, slotwise.lab.target_policy). Prints IPS,
SNIPS and doubly robust estimates of the mean reward per decision with 95% intervals (and
bootstrap ones with ``--bootstrap N``), the effective sample size and per-slot results, beside
the logging policy's own mean; ``--format json`` carries all of it (schema in docs/learning.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from slotwise.proxy.cli import EXIT_OK, UsageError, add_config_option, read_settings

CANDIDATES = (
    "uniform",
    "upstream",
    "model",
    "model-greedy",
    "fixed:SLOT=VARIANT,...",
    "probabilities:FILE",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "log", type=Path, nargs="+", help="decision log(s), JSONL; several are merged by time"
    )
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
        "--allow-training-log",
        action="store_true",
        help="evaluate a model even on decisions it learned from (its estimates are biased)",
    )
    parser.add_argument(
        "--window", type=float, default=3600.0, help="reward window in seconds (default 3600)"
    )
    parser.add_argument(
        "--goal",
        default="clicks=1",
        help="reward for decision+reward logs, e.g. clicks=1,conversions=10 (default clicks=1)",
    )
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        metavar="N",
        help="also give bootstrap percentile intervals from N resamples (default 0: none)",
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="seed of the bootstrap resamples (default 1)"
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    add_config_option(parser)


def run(args: argparse.Namespace) -> int:
    if not (math.isfinite(args.window) and args.window > 0):
        raise UsageError(f"--window must be a positive number of seconds, got {args.window}")
    if not 0 <= args.bootstrap <= 100_000:
        raise UsageError(
            f"--bootstrap must be a number of resamples from 0 to 100000, got {args.bootstrap}"
        )
    from slotwise.proxy.bandit.store import models_dir

    goal = _goal(args.goal)
    settings = read_settings(args, {"bandit.models_dir": ("--models", args.models)})
    return _evaluate(args, goal, models_dir(settings.bandit.models_dir))


def _evaluate(args: argparse.Namespace, goal: Any, models: Path) -> int:
    from slotwise.lab.evaluation import evaluate, logged_bootstrap, logged_value
    from slotwise.lab.evaluation_log import read_evaluation_log
    from slotwise.lab.intervals import Bootstrap

    log = read_evaluation_log(args.log, lambda _: goal, window=args.window)
    joined = [j for j in log.joined if j.decision.fail_open is None]
    campaign = _campaign(args, sorted({j.decision.campaign for j in joined}))
    records = [j for j in joined if j.decision.campaign == campaign]
    warnings = list(log.warnings)
    checks: list[Any] = []
    candidates = [
        _candidate(name, campaign, records, args, models, log.where, warnings, checks)
        for name in args.candidate or ("uniform", "upstream")
    ]
    bootstrap = Bootstrap(args.bootstrap, args.seed) if args.bootstrap else None
    results = [evaluate(candidate, records, bootstrap) for candidate in candidates]
    for result in results:
        if result.support == 0:
            warnings.append(
                f"candidate {result.candidate} chooses nothing the log can support (support"
                " 0%): its estimates rest on no decision; check that --policies and --models"
                " match the campaign that wrote the log"
            )
    for warning in warnings:
        print(f"slotwise evaluate: warning: {warning}", file=sys.stderr)
    logged = logged_value(records)
    logged_interval = logged_bootstrap(records, bootstrap) if bootstrap is not None else None
    if args.format == "json":
        print(
            json.dumps(
                {
                    "campaign": campaign,
                    "logs": [str(path) for path in args.log],
                    "decisions": len(records),
                    "late_rewards": log.stats.late,
                    "unmatched_rewards": log.stats.unmatched,
                    "duplicate_decisions": log.stats.duplicate_decisions,
                    "window": args.window,
                    "goal": str(goal),
                    "bootstrap": (
                        {"replicates": args.bootstrap, "seed": args.seed} if bootstrap else None
                    ),
                    "logged": {
                        **logged.as_dict(),
                        "interval": logged.method,
                        "rewarded": sum(1 for j in records if j.reward != 0),
                        "bootstrap": logged_interval.as_dict() if logged_interval else None,
                    },
                    "candidates": [r.as_dict() for r in results],
                    "training_log": [check.as_dict() for check in checks],
                    "warnings": warnings,
                },
                indent=2,
            )
        )
        return EXIT_OK
    _print_text(campaign, records, log.stats, logged, logged_interval, results, checks)
    return EXIT_OK


def _print_text(
    campaign: str,
    records: Sequence[Any],
    stats: Any,
    logged: Any,
    logged_interval: Any,
    results: Sequence[Any],
    checks: Sequence[Any],
) -> None:
    """One block per candidate, one row per estimate (and per slot): value, 95% interval,
    bootstrap interval, then the effective sample size and support on the first row."""
    print(
        f"campaign {campaign}: {len(records)} decisions ({stats.late} late rewards dropped,"
        f" {stats.unmatched} unmatched)"
    )
    rewarded = sum(1 for j in records if j.reward != 0)
    print(f"logging policy: {rewarded} of {len(records)} decisions rewarded")
    column = "bootstrap 95%" if logged_interval is not None else ""
    print(f"{'':<34}{'value':>12}  {'95% interval':<26}{column:<26}{'ESS':>9} {'support':>8}")
    _row("logging policy", "", logged, logged_interval)
    for r in results:
        if len(r.candidate) > 23:
            print(r.candidate)  # the rows below are its
        for i, name in enumerate(("IPS", "SNIPS", "DR")):
            boot = r.bootstrap[name.lower()] if r.bootstrap is not None else None
            tail = (r.ess, r.support) if i == 0 else None
            label = r.candidate if i == 0 and len(r.candidate) <= 23 else ""
            _row(label, name, getattr(r, name.lower()), boot, tail)
        for slot in r.slots:
            _row(f"  slot {slot.slot}", "IPS", slot.ips, None, (slot.ess, slot.support))
            _row("", "SNIPS", slot.snips, None)
    print(
        "intervals: normal (IPS, DR), delta method (SNIPS), Wilson's for a plain proportion"
        " (W); slot rows: the candidate's choice in that slot only, the others as logged"
    )
    for check in checks:
        if check.warning is not None and check.overlap is not None and check.overlap.learned:
            print(f"WARNING: {check.warning}")


def _row(
    label: str,
    estimator: str,
    estimate: Any,
    boot: Any,
    tail: tuple[float, float] | None = None,
) -> None:
    digits = _decimals(estimate.value)
    if estimate.defined:
        mark = " W" if estimate.method == "wilson" else ""
        value = f"{estimate.value:.{digits}f}"
        interval = f"[{estimate.low:.{digits}f}, {estimate.high:.{digits}f}]{mark}"
    else:
        value, interval = "n/a", ""
    bootstrap = ""
    if boot is not None:
        bootstrap = (
            f"[{boot.low:.{digits}f}, {boot.high:.{digits}f}]"
            if math.isfinite(boot.low) and math.isfinite(boot.high)
            else "n/a"
        )
    line = f"{label:<24}{estimator:<10}{value:>12}  {interval:<26}{bootstrap:<26}"
    if tail is not None:
        line += f"{_ess(tail[0]):>9} {tail[1]:>8.1%}"
    print(line.rstrip())


def _decimals(value: float) -> int:
    """Decimals that show four significant digits of a value: 0.001234, 0.1923, 12.35."""
    if value == 0 or not math.isfinite(value):
        return 4
    return min(max(3 - math.floor(math.log10(abs(value))), 0), 12)


def _ess(ess: float) -> str:
    return f"{ess:,.0f}" if ess >= 10 else f"{ess:.2f}"


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
    name: str,
    campaign: str,
    records: list[Any],
    args: argparse.Namespace,
    models: Path,
    where: dict[str, str],
    warnings: list[str],
    checks: list[Any],
) -> Any:
    from slotwise.lab.evaluation import UniformCandidate, UpstreamCandidate

    if name == "uniform":
        return UniformCandidate()
    if name == "upstream":
        return UpstreamCandidate()
    if name.startswith("fixed:"):
        return _fixed(name, campaign, records)
    if name.startswith("probabilities:"):
        return _probabilities(name, records, where, warnings)
    if name in ("model", "model-greedy"):
        candidate, info = _model(name, campaign, records, args, models)
        check = _training_check(info, records, args.allow_training_log)
        checks.append(check)
        if check.warning is not None:
            warnings.append(check.warning)
        return candidate
    raise UsageError(f"unknown candidate {name!r}; use {', '.join(CANDIDATES)}")


def _probabilities(
    name: str, records: list[Any], where: dict[str, str], warnings: list[str]
) -> Any:
    from slotwise.lab.target_policy import load_probabilities

    text = name[len("probabilities:") :]
    if not text:
        raise UsageError(f"--candidate {name}: name the file, e.g. probabilities:target.json")
    candidate = load_probabilities(name, Path(text))
    warnings.extend(candidate.check([j.decision for j in records], where))
    return candidate


def _training_check(info: Any, records: list[Any], allow: bool) -> Any:
    from slotwise.lab.training_log import check_training_log

    return check_training_log(info, records, allow=allow)


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
) -> tuple[Any, Any]:
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
    return ModelCandidate(model, FeatureMap(), greedy=name == "model-greedy"), info


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
    from slotwise.proxy.offer_set import bandit_name, bandit_offers

    for offers in policy.offers:  # an offer set's records name it offers.NAME
        if bandit_name(offers) == campaign:
            return bandit_offers(offers)
    raise UsageError(f"--policies declare no campaign {campaign}")
