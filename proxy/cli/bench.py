"""``slotwise bench TARGET``: performance measurements, one target per part of the system.

Targets live in ``TARGETS`` (name -> module, summary); each target module has
``add_arguments(parser)`` and ``run(args) -> int`` like a verb. Add a target with one line.
"""

from __future__ import annotations

import argparse
import importlib
from typing import cast

from slotwise.proxy.cli import Command

TARGETS: dict[str, tuple[str, str]] = {
    "match": ("slotwise.lab.match_bench", "policy matching: compiled bitmap matcher vs reference"),
    "proxy": ("slotwise.lab.proxy_bench", "proxy req/s and latency vs upstream and nginx (wrk)"),
    "triggers": ("slotwise.lab.trigger_bench", "trigger cost per event and request; events/s"),
    "offers": ("slotwise.lab.offers_bench", "engine time of the offers step per decision"),
    "offer-creatives": (
        "slotwise.lab.offer_creatives_bench",
        "CPU time an offer in an ad creative adds to a campaign decision",
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="target", metavar="TARGET", title="targets", required=True)
    for name, (module_name, summary) in TARGETS.items():
        target = sub.add_parser(name, help=summary, description=summary)
        # argument definitions are light; the measuring code is imported only when run
        _target(module_name).add_arguments(target)


def run(args: argparse.Namespace) -> int:
    module_name, _ = TARGETS[args.target]
    return _target(module_name).run(args)


def _target(module_name: str) -> Command:
    return cast(Command, importlib.import_module(module_name))
