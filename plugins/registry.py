"""Discover, select, configure and build signal providers, once, at start-up.

Providers are found through the entry-point group ``slotwise.signals`` (name = provider name,
value = ``module:ProviderClass``). The built-in providers are listed in :data:`BUILTIN_PROVIDERS`
in exactly that form and go through the same loading and validation as third-party ones (they
are also declared as entry points in slotwise's own ``pyproject.toml``; the two are deduplicated).

``SLOTWISE_PLUGINS`` selects which providers load, as a comma-separated list of terms:

- unset or empty, or ``all``: every built-in and every installed plugin;
- ``builtins``: every built-in provider;
- a provider name (``weather``): that provider;
- ``-name``: remove that provider from what the earlier terms selected;
- ``none``: nothing (only the upstream ``ad.*`` signals remain in the schema).

So ``builtins,weather`` loads the built-ins and the weather plugin, ``all,-geo`` everything but
geo. An unknown name is an error that lists the installed providers.

:func:`load_schema` only imports provider classes (no configuration, no I/O): the policy
checker calls it. :func:`load_providers` also validates each provider's configuration and
builds it, returning a :class:`~slotwise.plugins.loaded.ProviderSet` the app starts in its
lifespan and passes to :func:`~slotwise.plugins.gather.gather` per request.
"""

from __future__ import annotations

import difflib
import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import msgspec

from slotwise.plugins.errors import PluginError, PluginProblem
from slotwise.plugins.loaded import LoadedProvider, ProviderSet
from slotwise.plugins.provider import PROVIDER_NAME, SIGNAL_NAME, Provider
from slotwise.plugins.schema import SignalSchema, SignalSpec, SignalType

ENTRY_POINT_GROUP = "slotwise.signals"
ENV_VAR = "SLOTWISE_PLUGINS"

# Like datasette's DEFAULT_PLUGINS: the built-ins, loaded exactly as entry points are.
BUILTIN_PROVIDERS: tuple[tuple[str, str], ...] = (
    ("consent", "slotwise.plugins.builtin.consent:ConsentProvider"),
    ("request", "slotwise.plugins.builtin.request:RequestProvider"),
    ("device", "slotwise.plugins.builtin.device:DeviceProvider"),
    ("geo", "slotwise.plugins.builtin.geo:GeoProvider"),
    ("time", "slotwise.plugins.builtin.clock:TimeProvider"),
    ("profile", "slotwise.plugins.builtin.profile:ProfileProvider"),
)

UPSTREAM = "upstream"
# Signals the proxy reads from the upstream response (its adapters fill them), not a provider.
UPSTREAM_SIGNALS: tuple[SignalSpec, ...] = (
    SignalSpec("ad.campaign_id", SignalType.STRING, UPSTREAM, "Campaign id in the ad response."),
    SignalSpec("ad.creative_id", SignalType.STRING, UPSTREAM, "Creative id in the ad response."),
    SignalSpec("ad.placement", SignalType.STRING, UPSTREAM, "Placement named by the response."),
    SignalSpec(
        "ad.format",
        SignalType.STRING,
        UPSTREAM,
        "Format of the upstream response.",
        values=frozenset({"json", "openrtb", "vast"}),
    ),
)

# Keys every provider's configuration accepts besides its own ``config_type`` fields.
COMMON_KEYS = ("deadline_ms", "cache_ttl_s")

_registered: list[type[Provider[Any]]] = []


@dataclass(frozen=True, slots=True)
class Candidate:
    """A provider that could be loaded: its name, ``module:Class`` target and where it is from."""

    name: str
    target: str
    origin: str  # "built-in", a distribution name, or "registered"
    cls: type[Provider[Any]] | None = None  # set for programmatically registered classes

    def load(self) -> type[Provider[Any]]:
        if self.cls is not None:
            return self.cls
        loaded = metadata.EntryPoint(self.name, self.target, ENTRY_POINT_GROUP).load()
        if not (inspect.isclass(loaded) and issubclass(loaded, Provider)):
            raise TypeError(f"{self.target} is not a slotwise Provider subclass")
        return loaded


def register(cls: type[Provider[Any]]) -> Callable[[], None]:
    """Make ``cls`` loadable without an entry point (tests, embedding); returns an undo.

    Registered providers are selected like installed plugins (``all``, or by name).
    """
    _registered.append(cls)

    def unregister() -> None:
        if cls in _registered:
            _registered.remove(cls)

    return unregister


def candidates() -> tuple[Candidate, ...]:
    """Every provider that could load: built-ins, installed entry points, registered classes."""
    found: dict[str, Candidate] = {}
    problems: list[PluginProblem] = []

    def add(candidate: Candidate) -> None:
        seen = found.get(candidate.name)
        if seen is None:
            found[candidate.name] = candidate
        elif seen.target != candidate.target:
            problems.append(
                PluginProblem(
                    "duplicate_provider",
                    candidate.name,
                    f"defined twice: {seen.target} ({seen.origin}) and "
                    f"{candidate.target} ({candidate.origin}); uninstall one of them",
                )
            )

    for name, target in BUILTIN_PROVIDERS:
        add(Candidate(name, target, "built-in"))
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else "an unknown distribution"
        add(Candidate(ep.name, ep.value, dist))
    for cls in _registered:
        add(Candidate(cls.name, f"{cls.__module__}:{cls.__qualname__}", "registered", cls))
    if problems:
        raise PluginError(problems)
    return tuple(found.values())


def select(available: Sequence[Candidate], selection: str | None = None) -> tuple[Candidate, ...]:
    """The candidates ``selection`` (default: ``$SLOTWISE_PLUGINS``) names, in load order."""
    if selection is None:
        selection = os.environ.get(ENV_VAR, "")
    by_name = {c.name: c for c in available}
    builtins = [name for name, _ in BUILTIN_PROVIDERS]
    chosen: list[str] = []
    problems: list[PluginProblem] = []
    terms = [t.strip() for t in selection.split(",") if t.strip()] or ["all"]
    for term in terms:
        remove = term.startswith("-")
        word = term[1:].strip() if remove else term
        if word == "all":
            names = list(by_name)
        elif word == "builtins":
            names = builtins
        elif word == "none":
            chosen.clear()
            continue
        elif word in by_name:
            names = [word]
        else:
            hint = difflib.get_close_matches(word, [*by_name, "all", "builtins", "none"], n=1)
            did_you_mean = f' (did you mean "{hint[0]}"?)' if hint else ""
            problems.append(
                PluginProblem(
                    "unknown_provider",
                    word,
                    f"the plugin selection ({ENV_VAR}) names a provider that is not "
                    f"installed{did_you_mean}; "
                    f"installed: {', '.join(sorted(by_name))}",
                )
            )
            continue
        for name in names:
            if remove and name in chosen:
                chosen.remove(name)
            elif not remove and name not in chosen:
                chosen.append(name)
    if problems:
        raise PluginError(problems)
    return tuple(by_name[name] for name in chosen)


def discover(selection: str | None = None) -> tuple[type[Provider[Any]], ...]:
    """Import and validate the selected provider classes (nothing is configured or built)."""
    classes: list[type[Provider[Any]]] = []
    problems: list[PluginProblem] = []
    for candidate in select(candidates(), selection):
        try:
            cls = candidate.load()
        except Exception as exc:  # a broken plugin must name itself, not crash the start
            problems.append(
                PluginProblem(
                    "provider_import",
                    candidate.name,
                    f"cannot load {candidate.target} ({candidate.origin}): "
                    f"{type(exc).__name__}: {exc}",
                )
            )
            continue
        class_problems = check_provider_class(cls, candidate.name)
        problems.extend(class_problems)
        if not class_problems:
            classes.append(cls)
    problems.extend(_check_combination(classes))
    if problems:
        raise PluginError(problems)
    return tuple(classes)


def load_schema(selection: str | None = None) -> SignalSchema:
    """The combined schema of the selected providers plus the upstream ``ad.*`` signals.

    Raises :class:`PluginError` when a provider cannot be loaded or declares a bad schema.
    """
    specs: dict[str, SignalSpec] = {spec.name: spec for spec in UPSTREAM_SIGNALS}
    for cls in discover(selection):
        for spec in cls.schema():
            specs[spec.name] = spec
    return SignalSchema(specs)


def load_providers(
    config: Mapping[str, Mapping[str, Any]] | None = None, *, selection: str | None = None
) -> ProviderSet:
    """Validate each selected provider's config, build every provider, return the set.

    ``config`` maps provider name to its settings (the ``[plugins.NAME]`` tables of
    ``slotwise.toml``). Every problem found is reported at once in one :class:`PluginError`;
    nothing is built when any is found. Await ``ProviderSet.start()`` before serving.
    """
    config = config or {}
    classes = discover(selection)
    problems: list[PluginProblem] = []
    known = {c.name for c in candidates()}
    for name in config:
        if name not in known:
            hint = difflib.get_close_matches(name, sorted(known), n=1)
            did_you_mean = f' (did you mean "{hint[0]}"?)' if hint else ""
            problems.append(
                PluginProblem(
                    "unknown_provider",
                    name,
                    f"configured but no such provider is installed{did_you_mean}",
                )
            )
    loaded: list[LoadedProvider] = []
    for cls in classes:
        raw = config.get(cls.name, {})
        built = _build(cls, raw)
        if isinstance(built, PluginProblem):
            problems.append(built)
        else:
            loaded.append(built)
    if problems:
        raise PluginError(problems)
    return ProviderSet(loaded, load_schema_from(classes))


def load_schema_from(classes: Sequence[type[Provider[Any]]]) -> SignalSchema:
    """The combined schema of already discovered ``classes`` plus the upstream signals."""
    specs: dict[str, SignalSpec] = {spec.name: spec for spec in UPSTREAM_SIGNALS}
    for cls in classes:
        specs.update((spec.name, spec) for spec in cls.schema())
    return SignalSchema(specs)


def check_provider_class(cls: type[Provider[Any]], entry_name: str) -> list[PluginProblem]:
    """Everything wrong with a provider class's declarations (empty when it is fine)."""
    problems: list[PluginProblem] = []

    def bad(message: str) -> None:
        problems.append(PluginProblem("provider_declaration", entry_name, message))

    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not PROVIDER_NAME.match(name):
        bad(f"name must be lower-case letters, digits and _ (got {name!r})")
    elif name != entry_name:
        bad(f"the class is named {name!r} but registered as {entry_name!r}; make them equal")
    if inspect.isabstract(cls):
        bad("does not implement `async def fetch(self, request)`")
    elif not inspect.iscoroutinefunction(cls.fetch):
        bad("fetch must be `async def`")
    signals = getattr(cls, "signals", None)
    if not isinstance(signals, tuple) or not signals:
        bad("signals must be a non-empty tuple of slotwise.plugins.provider.signal(...)")
        return problems
    seen: set[str] = set()
    for declared in signals:
        if not SIGNAL_NAME.match(getattr(declared, "name", "")):
            bad(f"signal name {getattr(declared, 'name', declared)!r} is not namespace.name")
            continue
        if declared.name in seen:
            bad(f"declares {declared.name} twice")
        seen.add(declared.name)
        if declared.values is not None and declared.type not in (
            SignalType.STRING,
            SignalType.STRING_LIST,
        ):
            bad(f"{declared.name}: values= only applies to string signals")
        if (declared.minimum is not None or declared.maximum is not None) and (
            not declared.type.is_numeric
        ):
            bad(f"{declared.name}: minimum/maximum only apply to int and float signals")
    if not (isinstance(cls.deadline, int | float) and 0 < cls.deadline <= 10):
        bad(f"deadline must be seconds in (0, 10] (got {cls.deadline!r})")
    if cls.ttl is not None and not (isinstance(cls.ttl, int | float) and cls.ttl > 0):
        bad(f"ttl must be None or positive seconds (got {cls.ttl!r})")
    if cls.ttl is not None and cls.cache_key is Provider.cache_key:
        bad("sets ttl but does not override cache_key(request), so nothing would be cached")
    if not (inspect.isclass(cls.config_type) and issubclass(cls.config_type, msgspec.Struct)):
        bad("config_type must be a msgspec.Struct subclass")
    for read in cls.reads:
        if read in seen:
            bad(f"reads its own signal {read}")
    return problems


def _check_combination(classes: Sequence[type[Provider[Any]]]) -> list[PluginProblem]:
    problems: list[PluginProblem] = []
    owner: dict[str, str] = {spec.name: UPSTREAM for spec in UPSTREAM_SIGNALS}
    personal: set[str] = set()
    for cls in classes:
        for declared in cls.signals:
            if declared.name in owner:
                problems.append(
                    PluginProblem(
                        "signal_conflict",
                        cls.name,
                        f"{declared.name} is already declared by {owner[declared.name]!r}",
                    )
                )
            owner.setdefault(declared.name, cls.name)
            if cls.personal:
                personal.add(declared.name)
    for cls in classes:
        if cls.personal and any(s.name == "consent.level" for s in cls.signals):
            problems.append(
                PluginProblem(
                    "provider_declaration",
                    cls.name,
                    "consent.level decides whether personal providers run; "
                    "its provider must be contextual",
                )
            )
        if not cls.personal:
            for read in sorted(cls.reads & personal):
                problems.append(
                    PluginProblem(
                        "provider_declaration",
                        cls.name,
                        f"a contextual provider cannot read the personal signal {read}",
                    )
                )
    return problems


def _build(cls: type[Provider[Any]], raw: object) -> LoadedProvider | PluginProblem:
    if not isinstance(raw, Mapping):
        return PluginProblem("provider_config", cls.name, "its configuration must be a table")
    own = {k: v for k, v in raw.items() if k not in COMMON_KEYS}
    deadline: float = cls.deadline
    ttl = cls.ttl
    try:
        if "deadline_ms" in raw:
            deadline = _positive(raw["deadline_ms"], "deadline_ms") / 1000.0
        if "cache_ttl_s" in raw:
            ttl = _positive(raw["cache_ttl_s"], "cache_ttl_s") or None
            if ttl is not None and cls.cache_key is Provider.cache_key:
                raise ValueError("cache_ttl_s: this provider does not support caching")
        config = msgspec.convert(own, cls.config_type, strict=False)
    except (msgspec.ValidationError, ValueError) as exc:
        message = str(exc).replace("`$.", "`").replace("- at `$`", "").strip()
        return PluginProblem("provider_config", cls.name, f"invalid configuration: {message}")
    try:
        provider = cls(config)
    except Exception as exc:  # a provider's own checks in __init__: report, never a traceback
        return PluginProblem("provider_init", cls.name, f"{type(exc).__name__}: {exc}")
    return LoadedProvider.build(provider, deadline=deadline, ttl=ttl)


def _positive(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{key} must be a non-negative number (got {value!r})")
    return float(value)
