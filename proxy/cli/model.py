"""``slotwise model list|rollback``: the saved model versions of each campaign.

``list`` shows every version (newest last) with its examples, age and checksum, marking the
one that serves (CURRENT). ``rollback CAMPAIGN`` makes the previous version CURRENT (``--to N``
picks one); proxies load it on their next reload and the learner continues from it. A version
whose file no longer matches its checksum, or whose metadata cannot be read, cannot be rolled
back to; ``list`` shows such a version as unreadable and says why on stderr, as it does for a
CURRENT file that names no version. The models directory is ``--models``, else
``bandit.models_dir`` of the configuration (``--config``, ``SLOTWISE_BANDIT_MODELS_DIR``), else
var/slotwise/models.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slotwise.proxy.cli import EXIT_OK, UsageError, add_config_option, read_settings

if TYPE_CHECKING:
    from slotwise.proxy.bandit.store import ModelStore


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models",
        type=Path,
        default=None,
        help="models directory (default: bandit.models_dir, else var/slotwise/models)",
    )
    add_config_option(parser)
    parser.add_argument("--format", choices=("text", "json"), default="text")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list model versions")
    listing.add_argument("campaign", nargs="?", help="only this campaign")
    rollback = actions.add_parser("rollback", help="make an earlier version current")
    rollback.add_argument("campaign")
    rollback.add_argument("--to", type=int, default=None, metavar="VERSION")


def run(args: argparse.Namespace) -> int:
    from slotwise.proxy.bandit.store import ModelStore, models_dir

    settings = read_settings(args, {"bandit.models_dir": ("--models", args.models)})
    root = models_dir(settings.bandit.models_dir)
    if not root.is_dir():
        raise UsageError(
            f"no models directory at {root} (pass --models DIR or set bandit.models_dir)"
        )
    store = ModelStore(root)
    if args.action == "rollback":
        return _rollback(store, args.campaign, args.to, args.format)
    return _list(store, args.campaign, args.format)


def _rollback(store: ModelStore, campaign: str, to: int | None, fmt: str) -> int:
    info = store.rollback(campaign, to)
    if fmt == "json":
        print(json.dumps({"campaign": info.campaign, "current": info.version}))
    else:
        print(f"{info.campaign}: CURRENT is now {info.label} ({info.examples} examples)")
    return EXIT_OK


def _list(store: ModelStore, campaign: str | None, fmt: str) -> int:
    rows: list[dict[str, Any]] = []
    for name in [campaign] if campaign else store.campaigns():
        rows += _campaign_rows(store, name)
    if fmt == "json":
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        print("no models yet")
        return EXIT_OK
    now = time.time()
    print(f"{'campaign':<24} {'version':>8} {'examples':>10} {'age':>8}  sha256")
    for row in rows:
        mark = "*" if row["current"] else " "
        version = f"{mark}{'v' + str(row['version']):>7}"
        if row["unreadable"]:
            print(f"{row['campaign']:<24} {version} {'unreadable':>10} {'-':>8}  -")
            continue
        age = _age(max(now - row["created"], 0.0))
        print(
            f"{row['campaign']:<24} {version} {row['examples']:>10} {age:>8}  {row['sha256'][:12]}"
        )
    if any(row["current"] for row in rows):
        print("* = CURRENT (serving)")
    return EXIT_OK


def _campaign_rows(store: ModelStore, campaign: str) -> list[dict[str, Any]]:
    """One campaign's rows; what cannot be read is listed and explained, never skipped."""
    from slotwise.proxy.bandit.errors import BanditError

    infos, damaged = store.scan(campaign)
    try:
        current = store.checked_current(campaign)
    except BanditError as error:
        _warn(str(error))
        current = None
    rows = [
        {
            "campaign": campaign,
            "version": info.version,
            "current": info.version == current,
            "examples": info.examples,
            "family": info.family,
            "created": info.created,
            "sha256": info.sha256,
            "parent": info.parent,
            "unreadable": None,
        }
        for info in infos
    ]
    for entry in damaged:
        _warn(f"{entry.error}; v{entry.version} can neither serve nor be rolled back to")
        rows.append(
            {
                "campaign": campaign,
                "version": entry.version,
                "current": entry.version == current,
                "unreadable": entry.error.message,
            }
        )
    return sorted(rows, key=lambda row: int(row["version"]))


def _warn(message: str) -> None:
    print(f"slotwise model: warning: {message}", file=sys.stderr)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"
