"""``slotwise simulate [SCENARIO]``: synthetic traffic through the real decision path.

Runs a scenario file (examples/scenarios/*.toml) through the bandit runtime, the policy's
rules, the reward join, the learner and the model store, and reports per 1,000 impressions
the CTR and conversion rate of personalised vs control traffic and the share of the oracle's
CTR reached, then the lift by segment and the acceptance checks. Exit 0 when every check is
met, 1 when one is missed, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from slotwise.proxy.cli import EXIT_FAILED, EXIT_OK, UsageError

# beside the package in a checkout; the default works from any directory
DEFAULT_SCENARIO = Path(__file__).resolve().parents[2] / "examples/scenarios/segment-winners.toml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "scenario",
        nargs="?",
        type=Path,
        default=DEFAULT_SCENARIO,
        help="scenario file (default: examples/scenarios/segment-winners.toml)",
    )
    parser.add_argument("--impressions", type=int, default=None, help="override the scenario's")
    parser.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    parser.add_argument(
        "--models", type=Path, default=None, help="keep the published models in this directory"
    )
    parser.add_argument(
        "--log",
        type=Path,
        default=None,
        help="write every decision and reward as a JSONL decision log (for slotwise evaluate)",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")


def run(args: argparse.Namespace) -> int:
    from slotwise.proxy.bandit.errors import BanditError
    from slotwise.proxy.learn.scenario import load_scenario
    from slotwise.proxy.learn.sim_report import checks, render_text, summary
    from slotwise.proxy.learn.simulate import simulate

    if args.impressions is not None and args.impressions < 1:
        raise UsageError("--impressions must be at least 1")
    try:
        scenario = load_scenario(args.scenario)
    except BanditError as error:
        raise UsageError(str(error)) from error
    if args.models is not None:
        args.models.mkdir(parents=True, exist_ok=True)
    result = simulate(
        scenario,
        impressions=args.impressions,
        models_dir=args.models,
        seed=args.seed,
        log_path=args.log,
    )
    data = summary(scenario, result)
    met = all(ok for ok, _ in checks(data, scenario.effect))
    if args.format == "json":
        data["checks"] = [{"ok": ok, "check": text} for ok, text in checks(data, scenario.effect)]
        print(json.dumps(data, indent=2))
    else:
        print(render_text(data, scenario.effect))
    return EXIT_OK if met else EXIT_FAILED
