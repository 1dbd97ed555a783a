"""The signal schema the checker uses: the plugin registry's, or the built-in file's.

``default_schema()`` asks ``slotwise.plugins.registry.load_schema()`` (the combined schema of
the installed providers) and falls back to ``builtin_signals.json`` beside this module when the
registry is not importable, so the language works before and without the plugin system.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

from slotwise.plugins.schema import SignalSchema, SignalSpec, SignalType


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


def default_schema(on_fallback: Callable[[str], None] | None = None) -> SignalSchema:
    """The plugin registry's schema when it loads, else the built-in one.

    ``on_fallback`` hears why the registry's schema could not be used (a broken provider must
    not stop a marketer from checking a policy, but it should not go unnoticed either).
    """
    try:
        from slotwise.plugins.registry import load_schema

        schema = load_schema()
    except Exception as exc:  # ImportError, or a provider that fails to load
        if on_fallback is not None:
            on_fallback(f"using the built-in signal schema: {type(exc).__name__}: {exc}")
        return builtin_schema()
    return schema
