"""Discovery, selection, class and config validation, and the combined schema."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping
from pathlib import Path
from typing import Any

import msgspec
import pytest

from slotwise.plugins import registry
from slotwise.plugins.errors import PluginError
from slotwise.plugins.provider import Provider, signal
from slotwise.plugins.request import RequestInfo
from slotwise.plugins.schema import SignalType, SignalValue

BRIEF_SIGNALS = {
    "request.placement": SignalType.STRING,
    "request.path": SignalType.STRING,
    "request.page_type": SignalType.STRING,
    "request.page_category": SignalType.STRING,
    "request.referrer": SignalType.STRING,
    "request.language": SignalType.STRING,
    "device.type": SignalType.STRING,
    "device.os": SignalType.STRING,
    "device.browser": SignalType.STRING,
    "geo.country": SignalType.STRING,
    "geo.region": SignalType.STRING,
    "geo.city": SignalType.STRING,
    "geo.timezone": SignalType.STRING,
    "time.hour": SignalType.INT,
    "time.weekday": SignalType.STRING,
    "time.daypart": SignalType.STRING,
    "consent.level": SignalType.STRING,
    "user.age": SignalType.INT,
    "user.gender": SignalType.STRING,
    "user.segments": SignalType.STRING_LIST,
    "user.is_new": SignalType.BOOL,
    "user.visits": SignalType.INT,
    "cart.value": SignalType.FLOAT,
    "cart.count": SignalType.INT,
    "cart.items": SignalType.STRING_LIST,
    "user.erased": SignalType.BOOL,
    "ad.campaign_id": SignalType.STRING,
    "ad.creative_id": SignalType.STRING,
    "ad.placement": SignalType.STRING,
    "ad.format": SignalType.STRING,
}


class _LuckConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    threshold: int = 3


class LuckProvider(Provider[_LuckConfig]):
    name = "luck"
    config_type = _LuckConfig
    signals = (signal("luck.number", SignalType.INT, "A number.", minimum=0, maximum=9),)

    async def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        return {"luck.number": self.config.threshold}


@pytest.fixture
def luck() -> Iterator[type[LuckProvider]]:
    undo = registry.register(LuckProvider)
    yield LuckProvider
    undo()


def test_schema_has_every_signal_of_the_brief_with_its_type() -> None:
    schema = registry.load_schema("all")
    for name, kind in BRIEF_SIGNALS.items():
        spec = schema.get(name)
        assert spec is not None, name
        assert spec.type is kind, name
    assert schema.get("device.type").values == {"mobile", "tablet", "desktop", "ctv", "bot"}  # type: ignore[union-attr]
    assert schema.get("consent.level").values == {"personal", "contextual"}  # type: ignore[union-attr]


def test_personal_signals_are_marked_and_named_by_provider() -> None:
    schema = registry.load_schema()
    assert schema.get("user.age").personal  # type: ignore[union-attr]
    assert schema.get("user.age").provider == "profile"  # type: ignore[union-attr]
    assert not schema.get("geo.country").personal  # type: ignore[union-attr]
    assert schema.get("ad.format").provider == "upstream"  # type: ignore[union-attr]


def test_selection_terms() -> None:
    def names(selection: str) -> list[str]:
        return [c.name for c in registry.select(registry.candidates(), selection)]

    builtins = [name for name, _ in registry.BUILTIN_PROVIDERS]
    assert names("builtins") == builtins
    assert names("") == names("all")
    assert names("all,-geo") == [n for n in names("all") if n != "geo"]
    assert names("request,device") == ["request", "device"]
    assert names("none") == []
    assert "geo.country" not in registry.load_schema("request")
    assert "ad.format" in registry.load_schema("none")


def test_environment_variable_selects(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOTWISE_PLUGINS", "builtins,-profile")
    schema = registry.load_schema()
    assert "user.age" not in schema
    assert "device.type" in schema


def test_unknown_selection_names_installed_providers_with_a_hint() -> None:
    with pytest.raises(PluginError) as info:
        registry.load_schema("builtins,devise")
    [problem] = info.value.problems
    assert problem.code == "unknown_provider"
    assert problem.provider == "devise"
    assert 'did you mean "device"' in problem.message


def test_registered_provider_loads_and_is_selectable(luck: type[LuckProvider]) -> None:
    assert "luck.number" in registry.load_schema()
    assert "luck.number" in registry.load_schema("luck")
    assert "luck.number" not in registry.load_schema("builtins")


def test_bad_config_names_the_provider_and_builds_nothing(luck: type[LuckProvider]) -> None:
    with pytest.raises(PluginError) as info:
        registry.load_providers(
            {"luck": {"threshold": "high"}, "time": {"default_timezone": "Mars/Olympus"}}
        )
    problems = {p.provider: p for p in info.value.problems}
    assert problems["luck"].code == "provider_config"
    assert "threshold" in problems["luck"].message
    assert "Expected `int`" in problems["luck"].message
    assert "Mars/Olympus" in problems["time"].message
    assert "Traceback" not in str(info.value)


def test_unknown_config_key_and_unknown_provider_table() -> None:
    with pytest.raises(PluginError) as info:
        registry.load_providers({"geo": {"databse": "x"}, "weathr": {}}, selection="builtins")
    text = str(info.value)
    assert "provider 'geo'" in text and "databse" in text
    assert "provider 'weathr'" in text


def test_common_keys_override_deadline_and_ttl(luck: type[LuckProvider]) -> None:
    providers = registry.load_providers({"luck": {"deadline_ms": 5}}, selection="luck")
    assert providers.by_name["luck"].deadline == pytest.approx(0.005)
    with pytest.raises(PluginError, match="does not support caching"):
        registry.load_providers({"luck": {"cache_ttl_s": 5}}, selection="luck")


class _NoName(Provider[Any]):
    name = "Bad Name"
    signals = (signal("x", SignalType.INT, "not namespaced"),)

    async def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        return {}


class _Clash(Provider[Any]):
    name = "clash"
    signals = (signal("geo.country", SignalType.STRING, "again"),)

    async def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        return {}


class _SyncFetch(Provider[Any]):
    name = "syncfetch"
    ttl = 10.0
    signals = (signal("sync.x", SignalType.STRING, "x", minimum=1),)

    def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue]:  # type: ignore[override]
        return {}


def test_bad_declarations_are_reported() -> None:
    problems = registry.check_provider_class(_NoName, "bad")
    assert any("lower-case" in p.message for p in problems)
    assert any("namespace.name" in p.message for p in problems)
    problems = registry.check_provider_class(_SyncFetch, "syncfetch")
    messages = " | ".join(p.message for p in problems)
    assert "async def" in messages
    assert "cache_key" in messages
    assert "minimum/maximum" in messages


def test_signal_conflict_names_both_providers() -> None:
    undo = registry.register(_Clash)
    try:
        with pytest.raises(PluginError) as info:
            registry.load_schema()
        [problem] = info.value.problems
        assert problem.code == "signal_conflict"
        assert problem.provider == "clash"
        assert "'geo'" in problem.message
    finally:
        undo()


def test_builtins_are_installed_as_entry_points() -> None:
    from importlib import metadata

    installed = {ep.name: ep.value for ep in metadata.entry_points(group="slotwise.signals")}
    for name, target in registry.BUILTIN_PROVIDERS:
        assert installed.get(name) == target


def _install_fake_distribution(
    root: Path, monkeypatch: pytest.MonkeyPatch, name: str, entry_points: str, module: str = ""
) -> None:
    """A real (unpacked) distribution on sys.path, found by importlib.metadata like any other."""
    info = root / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[slotwise.signals]\n{entry_points}\n")
    if module:
        (root / f"{name.replace('-', '_')}.py").write_text(module)
    monkeypatch.syspath_prepend(str(root))


def test_a_plugin_that_fails_to_import_names_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_fake_distribution(
        tmp_path,
        monkeypatch,
        "slotwise-broken",
        "broken = slotwise_broken:BrokenProvider",
        module="import not_a_module_anywhere\n",
    )
    with pytest.raises(PluginError) as info:
        registry.load_schema()
    [problem] = info.value.problems
    assert (problem.code, problem.provider) == ("provider_import", "broken")
    assert "slotwise-broken" in problem.message and "not_a_module_anywhere" in problem.message
    # Deselected, it is never imported: the rest of slotwise keeps working.
    assert "geo.country" in registry.load_schema("all,-broken")


def test_two_packages_claiming_one_name_are_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_fake_distribution(
        tmp_path, monkeypatch, "slotwise-geo2", "geo = slotwise_geo2:Geo", module="Geo = None\n"
    )
    with pytest.raises(PluginError) as info:
        registry.candidates()
    [problem] = info.value.problems
    assert problem.code == "duplicate_provider" and "slotwise-geo2" in problem.message


def test_an_entry_point_that_is_not_a_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_fake_distribution(
        tmp_path, monkeypatch, "slotwise-odd", "odd = slotwise_odd:odd", module="odd = 42\n"
    )
    with pytest.raises(PluginError) as info:
        registry.load_schema("odd")
    [problem] = info.value.problems
    assert problem.code == "provider_import" and "not a slotwise Provider" in problem.message


class _Snoop(Provider[Any]):
    """Contextual, yet wants a personal signal."""

    name = "snoop"
    reads = frozenset({"user.age"})
    signals = (signal("snoop.x", SignalType.INT, "x"),)

    async def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        return {}


def test_a_contextual_provider_cannot_read_personal_signals(
    register_provider: Any,
) -> None:
    register_provider(_Snoop)
    with pytest.raises(PluginError) as info:
        registry.load_schema()
    [problem] = info.value.problems
    assert problem.provider == "snoop" and "personal signal user.age" in problem.message


# -- operator overrides are bounded like the class attributes --------------------------------


class _Cached(Provider[Any]):
    name = "cached"
    ttl = 60.0
    signals = (signal("cached.x", SignalType.INT, "x"),)

    def cache_key(self, request: RequestInfo) -> Hashable | None:
        return request.path

    async def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        return {}


@pytest.mark.parametrize(
    "override",
    [
        {"deadline_ms": float("nan")},
        {"deadline_ms": 0},
        {"deadline_ms": float("inf")},
        {"deadline_ms": 1e12},
        {"deadline_ms": -5},
        {"deadline_ms": True},
        {"cache_ttl_s": float("nan")},
        {"cache_ttl_s": float("inf")},
        {"cache_ttl_s": 1e12},
        {"cache_ttl_s": -1},
    ],
    ids=repr,
)
def test_deadline_and_ttl_overrides_out_of_bounds_are_refused(
    override: dict[str, Any], register_provider: Any
) -> None:
    register_provider(_Cached)
    with pytest.raises(PluginError) as info:
        registry.load_providers({"cached": override}, selection="cached")
    [problem] = info.value.problems
    assert (problem.code, problem.provider) == ("provider_config", "cached")
    [key] = override
    assert key in problem.message and "must be" in problem.message


def test_deadline_and_ttl_overrides_within_bounds(register_provider: Any) -> None:
    register_provider(_Cached)
    providers = registry.load_providers(
        {"cached": {"deadline_ms": 10_000, "cache_ttl_s": 86_400}}, selection="cached"
    )
    loaded = providers.by_name["cached"]
    assert (loaded.deadline, loaded.ttl) == (10.0, 86_400.0)
    off = registry.load_providers({"cached": {"cache_ttl_s": 0}}, selection="cached")
    assert off.by_name["cached"].ttl is None and off.by_name["cached"].cache is None


# -- sys.exit() at import, in __init__ or in config validation is reported, not obeyed ------


class _ExitsInInit(Provider[Any]):
    name = "exitsininit"
    signals = (signal("exitsininit.x", SignalType.INT, "x"),)

    def __init__(self, config: Any) -> None:
        raise SystemExit(5)

    async def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        return {}


class _KeyErrorConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    n: int = 1

    def __post_init__(self) -> None:
        raise KeyError("n")


class _KeyErrorProvider(Provider[_KeyErrorConfig]):
    name = "keyerror"
    config_type = _KeyErrorConfig
    signals = (signal("keyerror.x", SignalType.INT, "x"),)

    async def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        return {}


def test_sys_exit_in_init_is_provider_init(register_provider: Any) -> None:
    register_provider(_ExitsInInit)
    with pytest.raises(PluginError) as info:
        registry.load_providers(selection="exitsininit")
    [problem] = info.value.problems
    assert (problem.code, problem.provider) == ("provider_init", "exitsininit")
    assert "SystemExit" in problem.message and "-exitsininit" in problem.message


def test_config_type_raising_anything_is_provider_config(register_provider: Any) -> None:
    register_provider(_KeyErrorProvider)
    with pytest.raises(PluginError) as info:
        registry.load_providers(selection="keyerror")
    [problem] = info.value.problems
    assert (problem.code, problem.provider) == ("provider_config", "keyerror")
    assert "KeyError" in problem.message and "[plugins.keyerror]" in problem.message


def test_a_plugin_calling_sys_exit_at_import_is_provider_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_fake_distribution(
        tmp_path,
        monkeypatch,
        "slotwise-quits",
        "quits = slotwise_quits:Quits",
        module="import sys\nsys.exit(3)\n",
    )
    with pytest.raises(PluginError) as info:
        registry.load_schema("quits")
    [problem] = info.value.problems
    assert (problem.code, problem.provider) == ("provider_import", "quits")
    assert "SystemExit: 3" in problem.message and "slotwise-quits" in problem.message


def test_a_malformed_entry_point_value_names_the_distribution_and_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_fake_distribution(
        tmp_path, monkeypatch, "slotwise-typo", "typo = slotwise_typo:Typo extra", module=""
    )
    with pytest.raises(PluginError) as info:
        registry.load_schema("typo")
    [problem] = info.value.problems
    assert (problem.code, problem.provider) == ("provider_import", "typo")
    assert "'slotwise_typo:Typo extra'" in problem.message
    assert "slotwise-typo" in problem.message
    assert "AttributeError" not in problem.message


# -- declarations of the wrong type are provider_declaration, never a crash ------------------


def _declaring(**attributes: Any) -> type[Provider[Any]]:
    """A provider class named "decl" with ``attributes`` on top of valid declarations."""

    async def fetch(self: Provider[Any], request: RequestInfo) -> Mapping[str, SignalValue]:
        return {}

    body: dict[str, Any] = {
        "name": "decl",
        "signals": (signal("decl.x", SignalType.STRING, "x"),),
        "fetch": fetch,
    }
    return type("Decl", (Provider,), {**body, **attributes})


def _one(*args: Any, **kwargs: Any) -> Callable[[], dict[str, Any]]:
    # declared when the test runs: signal() itself must not be what fails
    return lambda: {"signals": (signal(*args, **kwargs),)}


BAD_DECLARATIONS: dict[str, tuple[Callable[[], dict[str, Any]], str]] = {
    "reads a list": (lambda: {"reads": ["geo.country"]}, "reads must be a frozenset"),
    "reads a string": (lambda: {"reads": "geo.country"}, "reads must be a frozenset"),
    "reads non-names": (lambda: {"reads": frozenset({1, None})}, "not a signal name"),
    "unknown type": (_one("decl.x", "strng", "x"), "type must be one of"),  # type: ignore[arg-type]
    "type as string": (_one("decl.x", "string", "x"), "type must be one of"),  # type: ignore[arg-type]
    "string minimum": (_one("decl.x", SignalType.INT, "x", minimum="0"), "finite number"),
    "nan minimum": (_one("decl.x", SignalType.FLOAT, "x", minimum=float("nan")), "finite"),
    "min above max": (_one("decl.x", SignalType.INT, "x", minimum=10, maximum=1), "above"),
    "description": (_one("decl.x", SignalType.STRING, 42), "description must be a string"),
    "int values": (_one("decl.x", SignalType.STRING, "x", values=[1, 2]), "list of strings"),
    "str values": (_one("decl.x", SignalType.STRING, "x", values="rain"), "list of strings"),
    "no values": (_one("decl.x", SignalType.STRING, "x", values=[]), "empty"),
    "unhashable values": (_one("decl.x", SignalType.STRING, "x", values=[["a"]]), "strings"),
    "number values": (_one("decl.x", SignalType.STRING, "x", values=5), "list of strings"),
    "personal yes": (lambda: {"personal": "yes"}, "personal must be True or False"),
    "inline no": (lambda: {"inline": "no"}, "inline must be True or False"),
    "nan deadline": (lambda: {"deadline": float("nan")}, "deadline must be seconds"),
    "bool deadline": (lambda: {"deadline": True}, "deadline must be seconds"),
    "not a signal": (lambda: {"signals": ("decl.x",)}, "signal(...) declarations"),
    "int signal name": (_one(7, SignalType.STRING, "x"), "not namespace.name"),
    "sync start": (lambda: {"start": lambda self: None}, "start must be `async def`"),
}


@pytest.mark.parametrize("case", list(BAD_DECLARATIONS))
def test_bad_declarations_are_provider_declaration(case: str, register_provider: Any) -> None:
    attributes, expected = BAD_DECLARATIONS[case]
    register_provider(_declaring(**attributes()))
    with pytest.raises(PluginError) as info:
        registry.load_schema("decl")
    assert {p.code for p in info.value.problems} == {"provider_declaration"}
    assert {p.provider for p in info.value.problems} == {"decl"}
    assert expected in str(info.value)


def test_good_declarations_still_load(register_provider: Any) -> None:
    register_provider(
        _declaring(
            reads=frozenset({"geo.country"}),
            signals=(
                signal("decl.s", SignalType.STRING, "s", values=("a", "b")),
                signal("decl.f", SignalType.FLOAT, "f", minimum=-1, maximum=1.5),
                signal("decl.i", SignalType.INT, "i", minimum=0),
            ),
        )
    )
    assert "decl.f" in registry.load_schema("decl")


# -- selection ------------------------------------------------------------------------------


def _names(selection: str | None) -> list[str]:
    return [c.name for c in registry.select(registry.candidates(), selection)]


def test_a_selection_of_only_removals_starts_from_all(monkeypatch: pytest.MonkeyPatch) -> None:
    everything = _names("all")
    assert _names("-geo") == [n for n in everything if n != "geo"]
    assert _names("-geo,-time") == [n for n in everything if n not in ("geo", "time")]
    monkeypatch.setenv("SLOTWISE_PLUGINS", "-geo")
    assert "geo.country" not in registry.load_schema() and "device.type" in registry.load_schema()
    assert _names("builtins,-geo") == [n for n, _ in registry.BUILTIN_PROVIDERS if n != "geo"]


def test_a_typo_is_never_told_to_switch_everything_off(monkeypatch: pytest.MonkeyPatch) -> None:
    for typo in ("nope", "nne", "al", "alll"):
        with pytest.raises(PluginError) as info:
            registry.select(registry.candidates(), typo)
        [problem] = info.value.problems
        assert '"none"' not in problem.message and '"all"' not in problem.message, typo
    with pytest.raises(PluginError, match='did you mean "geo"'):
        registry.select(registry.candidates(), "gep")


def test_the_selection_error_names_where_the_selection_came_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(PluginError) as info:
        registry.select(registry.candidates(), "devise")  # slotwise signals --plugins devise
    assert "(--plugins)" in str(info.value) and "SLOTWISE_PLUGINS" not in str(info.value)
    monkeypatch.setenv("SLOTWISE_PLUGINS", "devise")
    with pytest.raises(PluginError) as info:
        registry.select(registry.candidates())
    assert "(SLOTWISE_PLUGINS)" in str(info.value)


@pytest.mark.parametrize("selection", ["-", "all,-", "geo, - ,time", "-none"])
def test_an_empty_or_meaningless_removal_is_a_clear_error(selection: str) -> None:
    with pytest.raises(PluginError) as info:
        registry.select(registry.candidates(), selection)
    [problem] = info.value.problems
    assert problem.code == "unknown_provider"
    assert "-geo" in problem.message or '"none"' in problem.message
