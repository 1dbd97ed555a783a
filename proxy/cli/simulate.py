"""``slotwise simulate [SCENARIO]``: synthetic traffic through the real decision path.

Runs a scenario file (examples/scenarios/*.toml) through the bandit runtime, the policy's
rules, the reward join, the learner and the model store, and reports per 1,000 impressions
the CTR and conversion rate of personalised vs control traffic and the share of the oracle's
CTR reached, then the lift by segment and the acceptance checks. Exit 0 when every check is
met, 1 when one is missed, 2 on bad usage (a bad scenario, an output path that cannot be
written).

The scenario and the output paths are checked before anything is written; the decision log is
written beside ``--log`` and takes its place only when the run completes, so a failed run
leaves an existing log as it was.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from slotwise.proxy.cli import EXIT_FAILED, EXIT_OK, UsageError

if TYPE_CHECKING:
    from slotwise.lab.scenario import Scenario

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
    from slotwise.lab.sim_report import checks, render_text, summary
    from slotwise.lab.simulate import simulate

    if args.impressions is not None and args.impressions < 1:
        raise UsageError("--impressions must be at least 1")
    if _kind(args.scenario) == "triggers":
        return _triggers(args)
    scenario = _load(args.scenario)
    if args.log is not None:
        _check_log(args.log)
    if args.models is not None:
        _check_models(args.models)
    with _log_beside(args.log) as partial_log, _models_dir(args.models):
        result = simulate(
            scenario,
            impressions=args.impressions,
            models_dir=args.models,
            seed=args.seed,
            log_path=partial_log,
        )
    data = summary(scenario, result)
    met = all(ok for ok, _ in checks(data, scenario.effect))
    if args.format == "json":
        data["checks"] = [{"ok": ok, "check": text} for ok, text in checks(data, scenario.effect)]
        print(json.dumps(data, indent=2))
    else:
        print(render_text(data, scenario.effect))
    return EXIT_OK if met else EXIT_FAILED


def _kind(path: Path) -> str:
    """The scenario's ``kind`` (``triggers`` for lab/trigger_scenario.py, else bandit)."""
    import tomllib

    try:
        return str(tomllib.loads(path.read_text(encoding="utf-8")).get("kind", "bandit"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return "bandit"  # the bandit loader reports what is wrong with the file


def _triggers(args: argparse.Namespace) -> int:
    """A triggers scenario: triggered campaigns vs standard retargeting."""
    from slotwise.lab.trigger_scenario import (
        checks,
        load_trigger_scenario,
        render_text,
        run_trigger_scenario,
    )

    try:
        scenario = load_trigger_scenario(args.scenario)
    except (ValueError, OSError) as error:
        raise UsageError(str(error)) from error
    report = run_trigger_scenario(scenario, seed=args.seed)
    effect = scenario.reminder_effect != 1.0 or any(
        v != 1.0 for v in scenario.offer_effect.values()
    )
    results = checks(report, effect)
    if args.format == "json":
        report["checks"] = [{"ok": ok, "check": text} for ok, text in results]
        print(json.dumps(report, indent=2))
    else:
        print(render_text(report))
        for ok, text in results:
            print(f"  [{'ok' if ok else 'MISSED'}] {text}")
    return EXIT_OK if all(ok for ok, _ in results) else EXIT_FAILED


def _load(path: Path) -> Scenario:
    from slotwise.lab.scenario import load_scenario
    from slotwise.proxy.bandit.errors import BanditError

    try:
        return load_scenario(path)
    except BanditError as error:
        raise UsageError(str(error)) from error


def _check_log(log: Path) -> None:
    if log.is_dir():
        raise UsageError(f"--log {log} is a directory; give the path of a file to write")
    folder = log.parent
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--log {log}: {folder} is not a directory")
    if not folder.is_dir():
        raise UsageError(f"--log {log}: directory {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"--log {log}: cannot write in {folder} (permission denied)")


def _check_models(models: Path) -> None:
    missing = _outermost_missing(models)
    existing = models if missing is None else missing.parent
    if not existing.is_dir():
        what = "is a file" if existing == models else f"is inside {existing}, a file"
        raise UsageError(f"--models {models} {what}; give a directory for the models")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--models {models}: cannot write in {existing} (permission denied)")


@contextlib.contextmanager
def _log_beside(log: Path | None) -> Iterator[Path | None]:
    """A new file beside ``log`` for the run to write; it replaces ``log`` only on success."""
    if log is None:
        yield None
        return
    target = log.resolve()  # through a symbolic link: replacing the link would cut it
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
    try:
        # 0o666 less the umask: the log gets the permissions a plain open() would give it
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        raise UsageError(f"--log {log}: cannot write beside it ({exc.strerror})") from exc
    try:
        yield partial
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


@contextlib.contextmanager
def _models_dir(models: Path | None) -> Iterator[None]:
    """Create ``models`` for the run; if the run fails, remove what this run created."""
    if models is None:
        yield
        return
    created = _outermost_missing(models)
    try:
        models.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--models {models}: cannot create it ({exc.strerror})") from exc
    try:
        yield
    except BaseException:
        if created is not None:  # only what this run made: its models are partial
            shutil.rmtree(created, ignore_errors=True)
        raise


def _outermost_missing(path: Path) -> Path | None:
    missing = None
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing = candidate
    return missing
