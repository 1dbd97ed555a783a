"""``slotwise model list|rollback``: the saved model versions of each campaign.

``list`` shows every version (newest last) with its examples, age and checksum, marking the
one that serves (CURRENT). ``rollback CAMPAIGN`` makes the previous version CURRENT (``--to N``
picks one); proxies load it on their next reload and the learner continues from it. A version
whose file no longer matches its checksum cannot be rolled back to.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from slotwise.proxy.cli import EXIT_FAILED, EXIT_OK, UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models",
        type=Path,
        default=None,
        help="models directory (default: $SLOTWISE_MODELS_DIR or var/slotwise/models)",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list model versions")
    listing.add_argument("campaign", nargs="?", help="only this campaign")
    rollback = actions.add_parser("rollback", help="make an earlier version current")
    rollback.add_argument("campaign")
    rollback.add_argument("--to", type=int, default=None, metavar="VERSION")


def run(args: argparse.Namespace) -> int:
    from slotwise.proxy.bandit.errors import BanditError
    from slotwise.proxy.bandit.store import ModelStore, default_models_dir

    root = args.models or default_models_dir()
    if not root.is_dir():
        raise UsageError(f"no models directory at {root} (set --models or $SLOTWISE_MODELS_DIR)")
    store = ModelStore(root)
    try:
        if args.action == "rollback":
            info = store.rollback(args.campaign, args.to)
            if args.format == "json":
                print(json.dumps({"campaign": info.campaign, "current": info.version}))
            else:
                print(f"{info.campaign}: CURRENT is now {info.label} ({info.examples} examples)")
            return EXIT_OK
        return _list(store, args.campaign, args.format)
    except BanditError as error:
        if error.code in ("bad_campaign_name", "unknown_model_version", "nothing_to_roll_back"):
            raise UsageError(str(error)) from error
        print(f"slotwise model: {error}")
        return EXIT_FAILED


def _list(store: object, campaign: str | None, fmt: str) -> int:
    from slotwise.proxy.bandit.store import ModelStore

    assert isinstance(store, ModelStore)
    campaigns = [campaign] if campaign else store.campaigns()
    rows = []
    for name in campaigns:
        current = store.current_version(name)
        for info in store.versions(name):
            rows.append(
                {
                    "campaign": name,
                    "version": info.version,
                    "current": info.version == current,
                    "examples": info.examples,
                    "family": info.family,
                    "created": info.created,
                    "sha256": info.sha256,
                    "parent": info.parent,
                }
            )
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
        age = _age(now - float(row["created"]))  # type: ignore[arg-type]
        print(
            f"{row['campaign']:<24} {mark}{'v' + str(row['version']):>7} {row['examples']:>10}"
            f" {age:>8}  {str(row['sha256'])[:12]}"
        )
    print("* = CURRENT (serving)")
    return EXIT_OK


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"
