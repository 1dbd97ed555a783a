"""The signal schema the checker uses: the plugin registry's, or the built-in file's.

``builtin_schema()`` reads ``builtin_signals.json`` beside this module: the schema of the
built-in providers, so the language works before and without the plugin system. The schema of
the installed providers is ``slotwise.plugins.registry.default_schema()``, which falls back to
this one (the language does not import the plugin system).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

from slotwise.types import SignalSchema, SignalSpec, SignalType


def schema_from_json(document: Mapping[str, Any]) -> SignalSchema:
    """A schema from ``{"signals": [{"name", "type", "provider", "description", ...}]}``."""
    specs = []
    for entry in document["signals"]:
        values = entry.get("values")
        specs.append(
            SignalSpec(
                name=entry["name"],
                type=SignalType(entry["type"]),
                provider=entry.get("provider", "builtin"),
                description=entry.get("description", ""),
                values=frozenset(values) if values is not None else None,
                minimum=entry.get("minimum"),
                maximum=entry.get("maximum"),
                personal=bool(entry.get("personal", False)),
            )
        )
    return SignalSchema({spec.name: spec for spec in specs})


def builtin_schema() -> SignalSchema:
    """The schema of the built-in providers, as shipped in builtin_signals.json."""
    text = resources.files("slotwise.dsl").joinpath("builtin_signals.json").read_text("utf-8")
    return schema_from_json(json.loads(text))
