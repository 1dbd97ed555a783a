"""The ``slotwise`` command.

Each verb is a thin module in this package with ``add_arguments(parser)`` and
``run(args) -> int``; heavy imports happen inside ``run`` so that ``slotwise --help`` stays fast.
Exit codes: 0 success, 1 what was checked is wrong, 2 bad usage.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Protocol, cast

from slotwise import __version__

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug in slotwise, not in what the user gave it

# verb -> (module, one-line description); listed in `slotwise --help` in this order.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("slotwise.proxy.cli.demo", "run the end-to-end demo"),
    "serve": ("slotwise.proxy.cli.serve", "run the edge proxy in front of an upstream"),
    "signals": ("slotwise.proxy.cli.signals", "list every signal with its type and provider"),
    "check": ("slotwise.proxy.cli.check", "check policy files for errors"),
    "fmt": ("slotwise.proxy.cli.fmt", "format policy files canonically"),
    "test": ("slotwise.proxy.cli.test", "run the tests written in policy files"),
    "explain": ("slotwise.proxy.cli.explain", "explain which rules match for given signals"),
    "bench": ("slotwise.proxy.cli.bench", "benchmarks: match (policy matcher), proxy (end to end)"),
    "simulate": ("slotwise.proxy.cli.simulate", "simulate traffic; measure what the bandit learns"),
    "evaluate": ("slotwise.proxy.cli.evaluate", "evaluate candidate policies on a decision log"),
    "learn": ("slotwise.proxy.cli.learn", "run the learner: joined decisions in, models out"),
    "model": ("slotwise.proxy.cli.model", "list saved models or roll one back"),
}


class UsageError(Exception):
    """Bad usage that argparse cannot see (a missing file, an unknown name): exit 2."""


class Command(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Command]]:
    parser = argparse.ArgumentParser(
        prog="slotwise",
        description="Personalise ad and storefront responses from marketer policies.",
    )
    parser.add_argument("--version", action="version", version=f"slotwise {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    commands: dict[str, Command] = {}
    for verb, (module_name, summary) in COMMANDS.items():
        module = cast(Command, importlib.import_module(module_name))
        verb_parser = sub.add_parser(verb, help=summary, description=summary)
        module.add_arguments(verb_parser)
        commands[verb] = module
    return parser, commands


def main(argv: Sequence[str] | None = None) -> int:
    parser, commands = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return commands[args.command].run(args)
    except UsageError as exc:
        print(f"slotwise {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the last line of defence: never a traceback for users
        if os.environ.get("SLOTWISE_DEBUG"):
            traceback.print_exc()
        print(
            f"slotwise {args.command}: internal error: {type(exc).__name__}: {exc}\n"
            "  this is a bug in slotwise; run again with SLOTWISE_DEBUG=1 for the traceback "
            "and report it.",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def entry() -> None:
    sys.exit(main())
