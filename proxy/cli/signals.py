"""`slotwise signals`: every signal the loaded providers declare, with type and provider.

With ``--config`` (or ``[plugins.NAME]`` tables in ``$SLOTWISE_CONFIG`` or
``SLOTWISE_PLUGINS_CONFIG``), the providers are also built from their tables: every problem,
named (exit 1).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from slotwise.proxy.cli import read_settings


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
        type=Path,
        help="also validate the [plugins.NAME] tables of this slotwise.toml (exit 1 if wrong;"
        " default: $SLOTWISE_CONFIG)",
    )


def run(args: argparse.Namespace) -> int:
    import json

    from slotwise.plugins import registry

    settings = read_settings(args, {})  # the configuration is validated whole
    classes = registry.discover(args.plugins)
    origins = {c.name: c.origin for c in registry.candidates()}
    if args.config is not None or settings.plugins:
        registry.load_providers(settings.plugins, selection=args.plugins)
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
