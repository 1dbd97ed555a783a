"""`slotwise signals`: every signal the loaded providers declare, with type and provider."""

from __future__ import annotations

import argparse
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (default text)"
    )
    parser.add_argument(
        "--plugins",
        metavar="SELECTION",
        help="which providers to load, as SLOTWISE_PLUGINS (default: that variable, else all)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="also validate the [plugins.NAME] tables of this slotwise.toml (exit 1 if wrong)",
    )


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from slotwise.plugins import registry
    from slotwise.plugins.errors import PluginError

    try:
        classes = registry.discover(args.plugins)
        origins = {c.name: c.origin for c in registry.candidates()}
        if args.config is not None:
            registry.load_providers(_plugin_tables(args.config), selection=args.plugins)
    except PluginError as exc:
        for problem in exc.problems:
            print(f"slotwise signals: {problem}", file=sys.stderr)
        return 1
    schema = registry.load_schema_from(classes)
    if args.format == "json":
        document = {
            "providers": [
                {
                    "name": cls.name,
                    "origin": origins.get(cls.name, "registered"),
                    "personal": cls.personal,
                    "deadline_ms": round(cls.deadline * 1000, 3),
                    "ttl_s": cls.ttl,
                    "reads": sorted(cls.reads),
                }
                for cls in classes
            ],
            "signals": [
                {
                    "name": spec.name,
                    "type": spec.type.value,
                    "provider": spec.provider,
                    "personal": spec.personal,
                    "description": spec.description,
                    "values": sorted(spec.values) if spec.values is not None else None,
                    "minimum": spec.minimum,
                    "maximum": spec.maximum,
                }
                for spec in schema
            ],
        }
        print(json.dumps(document, indent=2))
        return 0
    rows = [("SIGNAL", "TYPE", "PROVIDER", "CONSENT", "DESCRIPTION")]
    for spec in schema:
        description = spec.description
        if spec.values is not None:
            description += f" One of: {', '.join(sorted(spec.values))}."
        if spec.minimum is not None and spec.maximum is not None:
            description += f" Range {spec.minimum:g}..{spec.maximum:g}."
        elif spec.minimum is not None:
            description += f" At least {spec.minimum:g}."
        elif spec.maximum is not None:
            description += f" At most {spec.maximum:g}."
        kind = "personal" if spec.personal else "contextual"
        rows.append((spec.name, spec.type.value, spec.provider, kind, description))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[4]]))
    return 0


def _plugin_tables(path: str) -> dict[str, Any]:
    """The ``[plugins.NAME]`` tables of a slotwise.toml."""
    import tomllib
    from pathlib import Path

    from slotwise.proxy.cli import UsageError

    try:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--config {path}: no such file") from None
    except OSError as exc:  # a directory, no permission
        raise UsageError(f"--config {path}: cannot read ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"--config {path}: not valid TOML: {exc}") from None
    tables = document.get("plugins", {})
    if not isinstance(tables, dict):
        raise UsageError(f"--config {path}: 'plugins' must be a table of [plugins.NAME] tables")
    return tables
