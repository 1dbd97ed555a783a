"""The ``slotwise`` command.

Each verb is a thin module in this package with ``add_arguments(parser)`` and
``run(args) -> int``; heavy imports happen inside ``run`` so that ``slotwise --help`` stays fast.
Exit codes: 0 success, 1 what was checked is wrong, 2 bad usage, 70 an internal error (a bug),
130 interrupted. A verb returns 0 or 1 itself, or raises a SlotwiseError: :func:`main` prints it
and exits with the code its area declares (slotwise.errors), in one place. Verbs that read
settings take ``--config`` (:func:`add_config_option`) and read them with :func:`read_settings`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from slotwise import __version__, native
from slotwise.errors import EXIT_FAILED as EXIT_FAILED  # re-exported for the verbs
from slotwise.errors import EXIT_USAGE as EXIT_USAGE
from slotwise.errors import USAGE, SlotwiseError

if TYPE_CHECKING:
    from slotwise.proxy.config import Settings

EXIT_OK = 0
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug in slotwise, not in what the user gave it
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a command killed by it reports

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
    "simulate-offers": (
        "slotwise.proxy.cli.simulate_offers",
        "simulate offers: the fixed discount ladder against the bandit",
    ),
    "evaluate": ("slotwise.proxy.cli.evaluate", "evaluate candidate policies on a decision log"),
    "export": ("slotwise.proxy.cli.export", "export the store's decisions or events as a log"),
    "report": ("slotwise.proxy.cli.report", "report lift, variants and learning from the logs"),
    "guardrail": ("slotwise.proxy.cli.guardrail", "list reverted campaigns, or re-enable one"),
    "learn": ("slotwise.proxy.cli.learn", "run the learner: joined decisions in, models out"),
    "model": ("slotwise.proxy.cli.model", "list saved models or roll one back"),
    "audiences": ("slotwise.proxy.cli.audiences", "list or export the users in a trigger state"),
    "notify": (
        "slotwise.proxy.cli.notify",
        "run the notification sender; list, replay dead letters",
    ),
    "recs": ("slotwise.proxy.cli.recs", "recommenders: replay an events file and score them"),
}


class UsageError(SlotwiseError):
    """Bad usage that argparse cannot see (a missing file, an unknown name): exit 2."""

    area = USAGE
    code = "usage"

    def render(self) -> str:
        return self.message  # the message names the option; the code adds nothing for a person


class Command(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Command]]:
    parser = argparse.ArgumentParser(
        prog="slotwise",
        description="Personalise ad and storefront responses from marketer policies.",
    )
    parser.add_argument(
        "--version", action="version", version=f"slotwise {__version__}, {native.summary()}"
    )
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
    except (Exception, KeyboardInterrupt) as exc:  # every ending's exit code, in one place
        return failed(args.command, exc)


def failed(command: str, error: Exception | KeyboardInterrupt) -> int:
    """Say why ``command`` stopped, on stderr, and return its exit code: an error's area
    declares 1 or 2 (slotwise.errors); Ctrl-C is 130; anything else is a bug, 70."""
    if isinstance(error, SlotwiseError):
        print(error.for_command(f"slotwise {command}"), file=sys.stderr)
        return error.exit_code
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(error, BrokenPipeError):  # `slotwise ... | head`: the reader has had enough
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    if os.environ.get("SLOTWISE_DEBUG"):
        traceback.print_exception(error)
    print(
        f"slotwise {command}: internal error: {type(error).__name__}: {error}\n"
        "  this is a bug in slotwise; run again with SLOTWISE_DEBUG=1 for the traceback "
        "and report it.",
        file=sys.stderr,
    )
    return EXIT_INTERNAL


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """``--config FILE``, for every verb that reads settings."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        help="slotwise.toml to read (default: $SLOTWISE_CONFIG, else none)",
    )


def read_settings(args: argparse.Namespace, flags: Mapping[str, tuple[str, Any]]) -> Settings:
    """The settings of ``--config`` (else ``$SLOTWISE_CONFIG``), the environment, then the
    flags given: ``flags`` maps ``section.name`` to (its flag, its value or None)."""
    from slotwise.proxy.config import load_settings

    path = args.config
    if path is None and os.environ.get("SLOTWISE_CONFIG"):
        path = Path(os.environ["SLOTWISE_CONFIG"])
    return load_settings(
        path,
        overrides={key: value for key, (_, value) in flags.items()},
        flags={key: flag for key, (flag, _) in flags.items()},
    )


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush at exit does not fail on
    the closed pipe again (the Python docs' recipe for SIGPIPE)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def entry() -> None:
    code = main()
    try:
        sys.stdout.flush()  # what is still buffered meets the closed pipe here, not at exit
    except BrokenPipeError:
        _silence_stdout()
        code = EXIT_BROKEN_PIPE
    sys.exit(code)
