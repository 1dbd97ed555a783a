"""dsl/builtin_signals.json (the checker's fallback schema) matches the built-in providers."""

from __future__ import annotations

from slotwise.dsl.schema_file import builtin_schema
from slotwise.plugins.registry import load_schema


def test_the_fallback_schema_file_matches_the_builtin_providers() -> None:
    shipped = builtin_schema()
    live = load_schema(selection="builtins")
    assert sorted(shipped.specs) == sorted(live.specs), (
        "dsl/builtin_signals.json drifted from plugins/: regenerate it from "
        "`slotwise signals --format json --plugins builtins`"
    )
    for b in live:
        a = shipped.specs[b.name]
        assert (a.type, a.values, a.minimum, a.maximum, a.personal, a.provider) == (
            b.type,
            b.values,
            b.minimum,
            b.maximum,
            b.personal,
            b.provider,
        ), b.name
