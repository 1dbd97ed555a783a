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
geo; a selection of only removals starts from ``all`` (``-geo`` is ``all,-geo``). An unknown
name is an error that lists the installed providers.

:func:`load_schema` only imports provider classes (no configuration, no I/O): the policy
checker calls it. :func:`load_providers` also validates each provider's configuration and
builds it, returning a :class:`~slotwise.plugins.loaded.ProviderSet` the app starts in its
lifespan and passes to :func:`~slotwise.plugins.gather.gather` per request.
"""

from __future__ import annotations

import difflib
import inspect
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any, TypeGuard

import msgspec

from slotwise.plugins.errors import PluginError, PluginProblem
from slotwise.plugins.loaded import LoadedProvider, ProviderSet
from slotwise.plugins.provider import (
    MAX_DEADLINE,
    MAX_TTL,
    PROVIDER_NAME,
    SIGNAL_NAME,
    Provider,
    Signal,
)
from slotwise.types import SignalSchema, SignalSpec, SignalType

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
    ("ortb", "slotwise.plugins.builtin.ortb:OrtbProvider"),
    ("ortb_user", "slotwise.plugins.builtin.ortb:OrtbUserProvider"),
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


class _MalformedTarget(Exception):
    """An entry point value that is not ``module:Class`` (a broken package)."""


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
        match = metadata.EntryPoint.pattern.match(self.target)
        if match is None or match.group("attr") is None:
            # importlib would fail with an AttributeError about NoneType that names nothing
            raise _MalformedTarget(f"the entry point value {self.target!r} is not module:Class")
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
    """The candidates ``selection`` (default: ``$SLOTWISE_PLUGINS``) names, in load order.

    A selection of only removals (``-geo``) removes from ``all``: selecting nothing that way
    would be a surprise, and ``none`` says it plainly.
    """
    # An explicit selection comes from `slotwise signals --plugins`; name what the user typed.
    source = ENV_VAR if selection is None else "--plugins"
    if selection is None:
        selection = os.environ.get(ENV_VAR, "")
    by_name = {c.name: c for c in available}
    terms = [t.strip() for t in selection.split(",") if t.strip()] or ["all"]
    if all(t.startswith("-") for t in terms):
        terms.insert(0, "all")
    chosen: list[str] = []
    problems: list[PluginProblem] = []
    for term in terms:
        remove = term.startswith("-")
        word = term[1:].strip() if remove else term
        names = _term(word, remove, by_name)
        if isinstance(names, str):
            message = f"the plugin selection ({source}) {names}"
            problems.append(PluginProblem("unknown_provider", word or term, message))
            continue
        if word == "none":
            chosen.clear()
        for name in names:
            if remove and name in chosen:
                chosen.remove(name)
            elif not remove and name not in chosen:
                chosen.append(name)
    if problems:
        raise PluginError(problems)
    return tuple(by_name[name] for name in chosen)


def _term(word: str, remove: bool, by_name: Mapping[str, Candidate]) -> list[str] | str:
    """The provider names one selection term means, or what is wrong with it."""
    if not word:
        return 'has a "-" without a provider name after it (write "-geo" to leave out geo)'
    if word == "all":
        return list(by_name)
    if word == "builtins":
        return [name for name, _ in BUILTIN_PROVIDERS]
    if word == "none":
        return (
            'has "-none", which removes nothing; write "none" to load no provider' if remove else []
        )
    if word in by_name:
        return [word]
    # Only names that fix a typo: "nope" must not be told "none" (which switches all off).
    hint = difflib.get_close_matches(word, [*by_name, "builtins"], n=1)
    did_you_mean = f' (did you mean "{hint[0]}"?)' if hint else ""
    return (
        f"names a provider that is not installed{did_you_mean}; "
        f"installed: {', '.join(sorted(by_name))}"
    )


def discover(selection: str | None = None) -> tuple[type[Provider[Any]], ...]:
    """Import and validate the selected provider classes (nothing is configured or built)."""
    classes: list[type[Provider[Any]]] = []
    problems: list[PluginProblem] = []
    for candidate in select(candidates(), selection):
        cls = _load_class(candidate)
        if isinstance(cls, PluginProblem):
            problems.append(cls)
            continue
        class_problems = check_provider_class(cls, candidate.name)
        problems.extend(class_problems)
        if not class_problems:
            classes.append(cls)
    problems.extend(_check_combination(classes))
    if problems:
        raise PluginError(problems)
    return tuple(classes)


def _load_class(candidate: Candidate) -> type[Provider[Any]] | PluginProblem:
    """Import one candidate's class; a broken plugin names itself rather than crash the start."""
    try:
        return candidate.load()
    except _MalformedTarget as exc:
        message = f"{exc} (in {candidate.origin}); the package is broken: fix or reinstall it"
    except (Exception, SystemExit) as exc:  # a module calling sys.exit() too: report, not exit
        message = (
            f"cannot load {candidate.target} ({candidate.origin}): {type(exc).__name__}: {exc}"
        )
    return PluginProblem(
        "provider_import", candidate.name, f"{message}; {_without(candidate.name)}"
    )


def _without(name: str) -> str:
    """How to start without a provider (a selection of only removals starts from ``all``)."""
    return f"or add -{name} to {ENV_VAR} to start without it"


def load_schema(selection: str | None = None) -> SignalSchema:
    """The combined schema of the selected providers plus the upstream ``ad.*`` signals.

    Raises :class:`PluginError` when a provider cannot be loaded or declares a bad schema.
    """
    specs: dict[str, SignalSpec] = {spec.name: spec for spec in UPSTREAM_SIGNALS}
    for cls in discover(selection):
        for spec in cls.schema():
            specs[spec.name] = spec
    return SignalSchema(specs)


def default_schema(on_fallback: Callable[[str], None] | None = None) -> SignalSchema:
    """The plugin registry's schema when it loads, else the built-in one.

    ``on_fallback`` hears why the registry's schema could not be used (a broken provider must
    not stop a marketer from checking a policy, but it should not go unnoticed either).
    """
    from slotwise.dsl.schema_file import builtin_schema

    try:
        schema = load_schema()
    except Exception as exc:  # ImportError, or a provider that fails to load
        if on_fallback is not None:
            on_fallback(f"using the built-in signal schema: {type(exc).__name__}: {exc}")
        return builtin_schema()
    return schema


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
    """Everything wrong with a provider class's declarations (empty when it is fine).

    Checked once, at load, so that neither the request path nor the policy checker meets a
    declaration of the wrong type.
    """
    messages = [*_check_identity(cls, entry_name), *_check_attributes(cls), *_check_signals(cls)]
    return [PluginProblem("provider_declaration", entry_name, m) for m in messages]


def _check_identity(cls: type[Provider[Any]], entry_name: str) -> Iterator[str]:
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not PROVIDER_NAME.match(name):
        yield f"name must be lower-case letters, digits and _ (got {name!r})"
    elif name != entry_name:
        yield f"the class is named {name!r} but registered as {entry_name!r}; make them equal"
    if inspect.isabstract(cls):
        yield "does not implement `async def fetch(self, request)`"
    elif not inspect.iscoroutinefunction(cls.fetch):
        yield "fetch must be `async def`"
    for hook in ("start", "aclose"):
        if not inspect.iscoroutinefunction(getattr(cls, hook)):
            yield f"{hook} must be `async def`"


def _check_attributes(cls: type[Provider[Any]]) -> Iterator[str]:
    for flag in ("personal", "inline", "needs_bid_request"):
        if not isinstance(getattr(cls, flag), bool):
            yield f"{flag} must be True or False (got {getattr(cls, flag)!r})"
    if not (_finite(cls.deadline) and 0 < cls.deadline <= MAX_DEADLINE):
        yield f"deadline must be seconds in (0, {MAX_DEADLINE:g}] (got {cls.deadline!r})"
    if cls.ttl is not None and not (_finite(cls.ttl) and 0 < cls.ttl <= MAX_TTL):
        yield f"ttl must be None or seconds in (0, {MAX_TTL:g}] (got {cls.ttl!r})"
    if cls.ttl is not None and cls.cache_key is Provider.cache_key:
        yield "sets ttl but does not override cache_key(request), so nothing would be cached"
    if not (inspect.isclass(cls.config_type) and issubclass(cls.config_type, msgspec.Struct)):
        yield "config_type must be a msgspec.Struct subclass"
    reads: object = cls.reads
    if not isinstance(reads, frozenset | set):
        example = 'frozenset({"geo.country"})'
        yield f"reads must be a frozenset of signal names, e.g. {example} (got {reads!r})"
        return
    for read in sorted(reads, key=repr):
        if not isinstance(read, str) or not SIGNAL_NAME.match(read):
            yield f"reads {read!r}, which is not a signal name (namespace.name)"


def _check_signals(cls: type[Provider[Any]]) -> Iterator[str]:
    signals = getattr(cls, "signals", None)
    if not isinstance(signals, tuple) or not signals:
        yield "signals must be a non-empty tuple of slotwise.plugins.provider.signal(...)"
        return
    seen: set[str] = set()
    for declared in signals:
        yield from _check_signal(declared)
        name = declared.name if isinstance(declared, Signal) else None
        if isinstance(name, str) and SIGNAL_NAME.match(name):
            if name in seen:
                yield f"declares {name} twice"
            seen.add(name)
    reads: object = cls.reads
    if isinstance(reads, frozenset | set):
        for read in sorted(seen & reads):
            yield f"reads its own signal {read}"


def _check_signal(declared: object) -> Iterator[str]:
    """What is wrong with one ``signal(...)`` declaration."""
    if not isinstance(declared, Signal):
        yield f"signals must hold signal(...) declarations, not {declared!r}"
        return
    name: object = declared.name
    if not isinstance(name, str) or not SIGNAL_NAME.match(name):
        yield f"signal name {name!r} is not namespace.name (lower-case letters, digits and _)"
        return
    yield from (f"{name}: {problem}" for problem in declared.problems)
    kind: object = declared.type
    if not isinstance(kind, SignalType):
        known = ", ".join(f"SignalType.{t.name}" for t in SignalType)
        yield f"{name}: type must be one of {known} (got {kind!r})"
        return
    description: object = declared.description
    if not isinstance(description, str):
        yield f"{name}: description must be a string (got {description!r})"
    yield from _check_values(name, kind, declared.values)
    yield from _check_bounds(name, kind, declared.minimum, declared.maximum)


def _check_values(name: str, kind: SignalType, values: object) -> Iterator[str]:
    if values is None:
        return
    if kind not in (SignalType.STRING, SignalType.STRING_LIST):
        yield f"{name}: values= only applies to string signals"
    elif not isinstance(values, frozenset) or not all(isinstance(v, str) for v in values):
        yield f"{name}: values must be a list of strings (got {values!r})"
    elif not values:
        yield f"{name}: values= is empty, so no value would ever be kept; leave it out instead"


def _check_bounds(name: str, kind: SignalType, minimum: object, maximum: object) -> Iterator[str]:
    if minimum is None and maximum is None:
        return
    if not kind.is_numeric:
        yield f"{name}: minimum/maximum only apply to int and float signals"
        return
    for label, bound in (("minimum", minimum), ("maximum", maximum)):
        if bound is not None and not _finite(bound):
            yield f"{name}: {label} must be a finite number (got {bound!r})"
    if _finite(minimum) and _finite(maximum) and minimum > maximum:
        yield f"{name}: minimum {minimum!r} is above maximum {maximum!r}"


def _finite(value: object) -> TypeGuard[int | float]:
    """A real number (not a bool, not nan or infinite): what a bound or duration must be."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True  # math.isfinite would overflow on a huge int
    return isinstance(value, float) and math.isfinite(value)


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
    try:
        deadline, ttl = _timing(cls, raw)
        config = msgspec.convert(own, cls.config_type, strict=False)
    except (msgspec.ValidationError, ValueError) as exc:
        message = str(exc).replace("`$.", "`").replace("- at `$`", "").strip()
        return PluginProblem("provider_config", cls.name, f"invalid configuration: {message}")
    except (Exception, SystemExit) as exc:  # config_type.__post_init__ raising anything else
        return PluginProblem(
            "provider_config",
            cls.name,
            f"checking its configuration raised {type(exc).__name__}: {exc} (a bug in "
            f"{cls.config_type.__name__}: report it to the plugin's authors); check its "
            f"[plugins.{cls.name}] table, {_without(cls.name)}",
        )
    try:
        provider = cls(config)
    except (Exception, SystemExit) as exc:  # its own checks in __init__, even sys.exit()
        message = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, SystemExit):  # say where: "SystemExit: 5" alone is a riddle
            message = f"__init__ called sys.exit ({message}); {_without(cls.name)}"
        return PluginProblem("provider_init", cls.name, message)
    return LoadedProvider.build(provider, deadline=deadline, ttl=ttl)


def _timing(cls: type[Provider[Any]], raw: Mapping[str, object]) -> tuple[float, float | None]:
    """The deadline and TTL after the ``deadline_ms`` / ``cache_ttl_s`` overrides.

    Bounded as the class attributes are: a NaN or infinite deadline would fail every request
    (the timer cannot be set), a zero one would time every fetch out.
    """
    deadline: float = cls.deadline
    ttl = cls.ttl
    if "deadline_ms" in raw:
        ms = MAX_DEADLINE * 1000
        deadline = _within(raw["deadline_ms"], "deadline_ms", "milliseconds", ms) / 1000.0
    if "cache_ttl_s" in raw:
        value = raw["cache_ttl_s"]
        off = _finite(value) and value == 0  # 0 turns the cache off
        ttl = None if off else _within(value, "cache_ttl_s", "seconds", MAX_TTL, "0 (no cache) or ")
        if ttl is not None and cls.cache_key is Provider.cache_key:
            raise ValueError("cache_ttl_s: this provider does not support caching")
    return deadline, ttl


def _within(value: object, key: str, unit: str, maximum: float, also: str = "") -> float:
    if not (_finite(value) and 0 < value <= maximum):
        raise ValueError(f"{key} must be {also}{unit} in (0, {maximum:g}] (got {value!r})")
    return float(value)
