"""The plugin documentation stays complete: a public hook, attribute, field or signal that is
not documented fails here (like datasette's tests/test_docs.py)."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from slotwise.native import source_of
from slotwise.plugins import loaded, registry
from slotwise.plugins.errors import PluginProblem
from slotwise.plugins.provider import Provider
from slotwise.plugins.request import RequestInfo

DOCS = Path(__file__).resolve().parents[2] / "docs"
PLUGINS = (DOCS / "plugins.md").read_text()
SIGNALS = (DOCS / "signals.md").read_text()


def _public_provider_members() -> list[str]:
    members = set(vars(Provider)) | set(Provider.__annotations__)
    members |= {"config", "services"}  # instance attributes set in __init__
    return sorted(m for m in members if not m.startswith("_") or m == "__init__")


@pytest.mark.parametrize("member", _public_provider_members())
def test_every_provider_hook_and_attribute_is_documented(member: str) -> None:
    reference = PLUGINS.split("## Interface reference", 1)[1].split("## Tutorial", 1)[0]
    documented = re.search(rf"`(async )?{re.escape(member)}\b", reference)
    assert documented, f"docs/plugins.md's reference does not document Provider.{member}"


@pytest.mark.parametrize(
    "field",
    [f.name for f in msgspec.structs.fields(RequestInfo)] + ["header", "without_identifiers"],
)
def test_every_request_info_field_is_documented(field: str) -> None:
    assert f"`{field}" in PLUGINS, f"docs/plugins.md does not document RequestInfo.{field}"


def test_every_error_code_is_documented() -> None:
    # the sources, not __file__: a compiled module's is its extension (slotwise.native)
    source = "".join(source_of(m.__name__).read_text() for m in (registry, loaded))
    codes = set(re.findall(r'PluginProblem\(\s*"([a-z_]+)"', source))
    codes |= set(re.findall(r'problems\.append\(\s*PluginProblem\(\s*"([a-z_]+)"', source))
    assert codes, "no codes found: did PluginProblem change?"
    assert PluginProblem.__name__ in PLUGINS
    for code in codes:
        assert f"`{code}`" in PLUGINS, f"error code {code} is not in docs/plugins.md"


def test_selection_terms_and_common_keys_are_documented() -> None:
    for term in ("all", "builtins", "none", "-NAME"):
        assert f"`{term}`" in PLUGINS
    for key in registry.COMMON_KEYS:
        assert f"`{key}`" in PLUGINS and f"`{key}`" in SIGNALS
    assert f"`{registry.ENV_VAR}`" in PLUGINS
    assert f"`{registry.ENTRY_POINT_GROUP}`" in PLUGINS


@pytest.mark.parametrize("spec", list(registry.load_schema("builtins")), ids=lambda s: s.name)
def test_every_builtin_signal_is_documented_with_its_type(spec: object) -> None:
    name, kind = spec.name, spec.type.value  # type: ignore[attr-defined]
    row = re.search(rf"^\| `{re.escape(name)}` \| ([^|]+) \|", SIGNALS, re.MULTILINE)
    assert row is not None, f"docs/signals.md has no table row for {name}"
    assert row.group(1).strip() == kind, f"docs/signals.md gives {name} the wrong type"


@pytest.mark.parametrize("cls", registry.discover("builtins"), ids=lambda c: c.name)
def test_every_builtin_config_key_is_documented(cls: type[Provider[object]]) -> None:
    for field in msgspec.structs.fields(cls.config_type):
        assert f"`{field.name}`" in SIGNALS, f"[plugins.{cls.name}] {field.name} is undocumented"


def test_docs_index_links_both_guides() -> None:
    index = (DOCS / "index.md").read_text()
    assert "(plugins.md)" in index and "(signals.md)" in index
