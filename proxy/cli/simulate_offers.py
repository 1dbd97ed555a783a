"""``slotwise simulate-offers``: the seed's fixed discount ladder against the bandit.

Runs the offers scenario (slotwise.lab.offers_sim: price-sensitive and price-insensitive
visitors with a known truth) once per seed, both policies through the real decision path, and
reports per seed and segment: revenue per visitor, revenue minus discount per visitor,
conversion rate and average discount, each with its 95% interval, then the acceptance checks
(docs/learning.md, "Offers"). Exit 0 when every check is met, 1 when one is missed.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from typing import Any

from slotwise.proxy.cli import EXIT_FAILED, EXIT_OK, UsageError

NET_TARGET = 0.25  # revenue minus discount per visitor, over the ladder
DISCOUNT_TARGET = -0.15  # the average discount, against the ladder's
SEEDS_NEEDED = 0.8  # share of the seeds that must meet both


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--visitors", type=int, default=100_000, help="visitors per seed")
    parser.add_argument("--seeds", type=int, default=10, help="how many seeds (1, 2, ...)")
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--format", choices=("text", "json"), default="text")


def run(args: argparse.Namespace) -> int:
    from slotwise.lab.offers_sim import (
        DEFAULT,
        compare,
        compile_scenario_policy,
        headroom,
        run_seed,
    )

    if args.visitors < 100:
        raise UsageError("--visitors must be at least 100")
    if args.seeds < 1:
        raise UsageError("--seeds must be at least 1")
    scenario = replace(DEFAULT, visitors=args.visitors)
    policy = compile_scenario_policy()
    results = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        result = compare(run_seed(scenario, seed, policy))
        results.append(result)
        if args.format == "text":
            print(_seed_text(result), flush=True)
    verdict = checks(results)
    bound = headroom(scenario, policy, args.first_seed)
    ladder, best, seen = bound.ladder, bound.best, bound.signals
    if args.format == "json":
        headroom_json = {
            "ladder_net_per_visitor": ladder,
            "best_net_per_visitor": best,
            "best_on_signals_net_per_visitor": seen,
        }
        print(
            json.dumps({"seeds": results, "headroom": headroom_json, "checks": verdict}, indent=2)
        )
    else:
        print(
            f"the truth's expected revenue minus discount per visitor: ladder {ladder:.3f},"
            f" the best arm for each visitor's segment and cart {best:.3f}"
            f" ({best / ladder - 1:+.1%}: the most any policy can gain here), the best arm"
            f" for what the request shows (medium, cart) {seen:.3f} ({seen / ladder - 1:+.1%}:"
            " the most a policy seeing the request, as the bandit does, can gain)"
        )
        for check in verdict:
            print(f"{'met   ' if check['ok'] else 'MISSED'} {check['check']}")
    return EXIT_OK if all(check["ok"] for check in verdict) else EXIT_FAILED


def checks(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The acceptance checks over every seed."""
    met = [
        r["segments"]["all"]["net_change"] >= NET_TARGET
        and r["segments"]["all"]["average_discount_change"] <= DISCOUNT_TARGET
        for r in results
    ]
    # the segment where discounts do not help: the bandit must not lose there
    unhelped = [
        r["segments"]["regulars"]["bandit"]["net_per_visitor"]
        + r["segments"]["regulars"]["bandit"]["net_per_visitor_ci"]
        >= r["segments"]["regulars"]["ladder"]["net_per_visitor"]
        for r in results
    ]
    violations = sum(r["violations"] for r in results)
    needed = -(-len(results) * SEEDS_NEEDED // 1)
    return [
        {
            "ok": sum(met) >= needed,
            "check": f"revenue minus discount per visitor >= +{NET_TARGET:.0%} over the ladder"
            f" and average discount <= {DISCOUNT_TARGET:.0%}: {sum(met)} of {len(results)} seeds"
            f" (needed {needed:.0f})",
        },
        {
            "ok": all(unhelped),
            "check": f"no loss on regulars (discounts do not help them): {sum(unhelped)} of"
            f" {len(results)} seeds",
        },
        {"ok": violations == 0, "check": f"guard violations: {violations}"},
    ]


def _seed_text(result: dict[str, Any]) -> str:
    lines = [f"seed {result['seed']} (guard violations: {result['violations']})"]
    header = (
        f"  {'segment':<13}{'policy':<8}{'revenue/visitor':>20}{'net/visitor':>20}"
        f"{'conversion':>18}{'avg discount':>14}"
    )
    lines.append(header)
    for name, row in result["segments"].items():
        for policy in ("ladder", "bandit"):
            s = row[policy]
            lines.append(
                f"  {name:<13}{policy:<8}"
                f"{s['revenue_per_visitor']:>12.3f} ±{s['revenue_per_visitor_ci']:<6.3f}"
                f"{s['net_per_visitor']:>12.3f} ±{s['net_per_visitor_ci']:<6.3f}"
                f"{s['conversion_rate']:>10.2%} ±{s['conversion_rate_ci']:<6.2%}"
                f"{s['average_discount']:>13.1%}"
            )
        lines.append(
            f"  {'':<13}{'change':<8}{'':>20}{row['net_change']:>+19.1%} {'':>18}"
            f"{row['average_discount_change']:>+13.1%}"
        )
    return "\n".join(lines)
