"""Configuration: one model, read from ``slotwise.toml``, ``SLOTWISE_*`` variables and flags.

Each ``[section]`` of the file is one frozen struct (``[events]`` is
slotwise.proxy.events.config.EventsConfig, beside its owner); each key's type, default, bounds
and one-line help are written once, on its field. Everything else is derived from them: the
environment variable (``SLOTWISE_SECTION_NAME``), the validation, :meth:`Settings.to_env` and
the key table of docs/proxy.md (a test compares the two). ``[plugins.NAME]`` tables are handed
to the signal providers, which validate them when they are built, naming the provider; in the
environment they are JSON, ``SLOTWISE_PLUGINS_CONFIG``.

:func:`load_settings` reads the file, then the environment, then flags (each wins over the
one before), validates everything once and reports every problem together with where it came
from (the file and key, the environment variable, the flag) and what to do. Unknown keys and
unknown ``SLOTWISE_*`` variables are errors with a did-you-mean; a variable that was renamed
names its new name. The variables that are not settings are listed in ``NOT_SETTINGS``.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import os
import tomllib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec

from slotwise.errors import CONFIG, Problem, SlotwiseError
from slotwise.proxy.adapters.json import DEFAULT_JSON_PATHS
from slotwise.proxy.events.config import EventsConfig
from slotwise.proxy.http_hygiene import ForwardingPolicy
from slotwise.proxy.upstream import Origin

PREFIX: Final = "SLOTWISE_"
# SLOTWISE_* variables that are not settings: variable -> what it is
NOT_SETTINGS: Final[Mapping[str, str]] = {
    "SLOTWISE_CONFIG": "the slotwise.toml to read when a command gets no --config",
    "SLOTWISE_DEBUG": "set to 1: an internal error prints its traceback",
    "SLOTWISE_PLUGINS": "which signal providers load (plugins.md)",
}
# variables read under another name before: old name -> what to set instead
RENAMED: Final[Mapping[str, str]] = {
    "SLOTWISE_MODELS_DIR": "SLOTWISE_BANDIT_MODELS_DIR instead: the models directory, "
    "bandit.models_dir",
    "SLOTWISE_STORE": "SLOTWISE_STORE_URL instead: the state store, store.url",
    "SLOTWISE_EVENTS_CONFIG": "one variable per [events] key instead, "
    "e.g. SLOTWISE_EVENTS_MAX_BATCH_EVENTS=100",
}


class ConfigError(SlotwiseError):
    """Invalid configuration; ``problems`` lists each one (code, where, what, how to fix)."""

    area = CONFIG
    code = "config_invalid"

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        lines = "\n  ".join(problem.render() for problem in self.problems)
        super().__init__(f"invalid configuration:\n  {lines}")

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(problem.code for problem in self.problems)

    def render(self) -> str:
        return self.message  # every problem line says where, what and what to do


def setting(
    help: str,
    *,
    ge: float | None = None,
    le: float | None = None,
    check: Callable[[Any], object] | None = None,
) -> msgspec.Meta:
    """A key's help, bounds and extra check (raises ValueError saying what is wrong)."""
    return msgspec.Meta(description=help, ge=ge, le=le, extra={"check": check} if check else None)


# -- checks beyond type and bounds, each on one key's value ----------------------------------


def _origin(url: str) -> None:
    if url:
        Origin.parse(url)


def _networks(cidrs: tuple[str, ...]) -> None:
    ForwardingPolicy.parse(cidrs)


def _ip_address(host: str) -> None:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"{host!r} is not an IP address (listen on 127.0.0.1, 0.0.0.0 for every interface, "
            "or ::)"
        ) from None


def _http_url(url: str) -> None:
    if url and not url.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")


def _secret(secret: str) -> None:
    if secret and len(secret) < 16:
        raise ValueError("must be at least 16 characters (use a random string)")


def _json_paths(paths: tuple[str, ...]) -> None:
    from slotwise.dsl.location import JsonPathLocation, LocationError, parse_location

    for text in paths:
        try:
            location = parse_location(text)
        except LocationError as exc:
            raise ValueError(f"{text!r} is not a JSON path: {exc}") from None
        if not isinstance(location, JsonPathLocation):
            raise ValueError(f"{text!r} is not a JSON path (start with '$')")


# -- the sections ------------------------------------------------------------------------------


class UpstreamConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[upstream]``: the ad server or storefront behind the proxy."""

    url: Annotated[
        str,
        setting(
            "origin every request goes to, e.g. `http://adserver:8000`; never taken from a "
            "request; `slotwise serve` needs it",
            check=_origin,
        ),
    ] = ""
    connect_timeout: Annotated[
        float,
        setting(
            "seconds to open a connection (then 504); also the wait for a free pooled connection",
            ge=0.001,
        ),
    ] = 2.0
    timeout: Annotated[
        float, setting("seconds from request sent to response headers (then 504)", ge=0.001)
    ] = 10.0
    read_timeout: Annotated[float, setting("longest silence inside a response body", ge=0.001)] = (
        30.0
    )
    max_connections: Annotated[int, setting("connections per worker to the upstream", ge=1)] = 256
    max_idle: Annotated[int, setting("idle keep-alive connections kept per worker", ge=0)] = 128
    idle_expiry: Annotated[
        float,
        setting(
            "seconds an idle connection is reused; keep it below the upstream's keep-alive timeout",
            ge=0.0,
        ),
    ] = 4.0


class ProxyConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[proxy]``: listening, policies, deadlines and request limits."""

    host: Annotated[str, setting("address to listen on", check=_ip_address)] = "127.0.0.1"
    port: Annotated[int, setting("port to listen on", ge=1, le=65535)] = 8080
    workers: Annotated[int, setting("worker processes", ge=1)] = 1
    policies: Annotated[str, setting("directory of `*.sw` policy files")] = "policies"
    reload_interval: Annotated[
        float, setting("seconds between policy change checks (0: no reloading)", ge=0.0)
    ] = 1.0
    decision_deadline_ms: Annotated[
        float,
        setting("engine time budget per response (parse, match, choose, rewrite)", ge=0.01),
    ] = 10.0
    signals_deadline_ms: Annotated[
        float,
        setting(
            "longest wait for the signal providers (they run while the upstream answers); the "
            "signals that arrived by then are used, late providers are counted in the provider "
            "metrics",
            ge=0.0,
        ),
    ] = 50.0
    max_header_bytes: Annotated[int, setting("request header block limit (431 beyond)", ge=256)] = (
        16384
    )
    max_body_bytes: Annotated[int, setting("request body limit (413 beyond)", ge=0)] = 1048576
    body_timeout: Annotated[
        float, setting("seconds to receive a request body (408 beyond)", ge=0.001)
    ] = 30.0
    max_rewrite_bytes: Annotated[
        int, setting("larger responses stream through unchanged", ge=1)
    ] = 2097152
    trusted_proxies: Annotated[
        tuple[str, ...],
        setting("CIDRs (load balancers) whose X-Forwarded-For is trusted", check=_networks),
    ] = ()


class StoreConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[store]``: where decisions, events and per-user state live."""

    url: Annotated[
        str,
        setting(
            "state store: `sqlite:///path/state.db`, `redis://host:6379/0`, `memory://` (lost "
            "on exit; each log keeps its newest 200,000 entries, `memory://?max_log_entries=N`); "
            "a malformed URL stops `slotwise serve` before it starts, naming what is wrong"
        ),
    ] = "memory://"


class TrackingConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[tracking]``: tracker URLs, click signing and the user cookie."""

    public_url: Annotated[
        str,
        setting(
            "the proxy's public origin used in tracker URLs, e.g. `https://ads.example.com` "
            "(empty: the request's Host)",
            check=_http_url,
        ),
    ] = ""
    secret: Annotated[
        str,
        setting(
            "click-signing key, at least 16 characters; set it (the same on every worker and "
            "machine) so signed clicks survive restarts (empty: random per start)",
            check=_secret,
        ),
    ] = ""
    user_cookie: Annotated[
        str,
        setting("cookie holding the pseudonymous user id (used only with personal consent)"),
    ] = "sw_uid"


class AdaptersConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[adapters]``: where generic JSON ads keep their ids and trackers (JSON paths)."""

    json_campaign_id: Annotated[
        tuple[str, ...],
        setting(
            "JSON paths of the campaign id (generic JSON); the first that exists wins",
            check=_json_paths,
        ),
    ] = DEFAULT_JSON_PATHS["campaign_id"]
    json_creative_id: Annotated[
        tuple[str, ...], setting("JSON paths of the creative id", check=_json_paths)
    ] = DEFAULT_JSON_PATHS["creative_id"]
    json_placement: Annotated[
        tuple[str, ...], setting("JSON paths of the placement", check=_json_paths)
    ] = DEFAULT_JSON_PATHS["placement"]
    json_impression_trackers: Annotated[
        tuple[str, ...],
        setting("lists the impression pixel is appended to", check=_json_paths),
    ] = DEFAULT_JSON_PATHS["impression_trackers"]
    json_click_trackers: Annotated[
        tuple[str, ...], setting("lists the click pixel is appended to", check=_json_paths)
    ] = DEFAULT_JSON_PATHS["click_trackers"]
    json_click_urls: Annotated[
        tuple[str, ...],
        setting(
            "click-through URLs wrapped in the signed `/_sw/click` redirect (`[]`: none)",
            check=_json_paths,
        ),
    ] = DEFAULT_JSON_PATHS["click_urls"]


class BanditConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[bandit]``: the model store the learner publishes to and the proxies reload."""

    models_dir: Annotated[
        str,
        setting(
            "the model store `slotwise learn` publishes to and `slotwise model` manages "
            "(`--models`); when set, a Vowpal Wabbit bandit chooses among the eligible variants "
            "in `slotwise serve`, else the rules do (pin, prefer, boost-weighted uniform); "
            "empty: `learn`, `model` and `evaluate` use `var/slotwise/models`"
        ),
    ] = ""
    reload_interval: Annotated[
        float,
        setting(
            "seconds between checks for a newly published (or rolled back) model; a model that "
            "fails its checksum or VW's loader is rejected and logged, the previous one keeps "
            "serving",
            ge=0.1,
        ),
    ] = 5.0


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The validated configuration: one struct per section (``settings.proxy.port``)."""

    upstream: UpstreamConfig = msgspec.field(default_factory=UpstreamConfig)
    proxy: ProxyConfig = msgspec.field(default_factory=ProxyConfig)
    store: StoreConfig = msgspec.field(default_factory=StoreConfig)
    tracking: TrackingConfig = msgspec.field(default_factory=TrackingConfig)
    adapters: AdaptersConfig = msgspec.field(default_factory=AdaptersConfig)
    bandit: BanditConfig = msgspec.field(default_factory=BanditConfig)
    events: EventsConfig = msgspec.field(default_factory=EventsConfig)
    plugins: Annotated[
        dict[str, dict[str, Any]],
        msgspec.Meta(
            description="one table per signal provider, `[plugins.NAME]` (signals.md); "
            "validated when the providers are built, naming the provider",
            extra={"env": "SLOTWISE_PLUGINS_CONFIG"},
        ),
    ] = msgspec.field(default_factory=dict)

    @classmethod
    def of(cls, **values: Any) -> Settings:
        """Defaults with some keys set, named ``section_name`` (``proxy_port=9000``), or whole
        sections (``events=EventsConfig(...)`` or a mapping of its keys, ``plugins={...}``).
        Not validated: for tests and embedding."""
        return cls().replace(**values)

    def replace(self, **values: Any) -> Settings:
        """These settings with some keys changed, named as in :meth:`of`."""
        sections: dict[str, Any] = {}
        changes: dict[str, dict[str, Any]] = {}
        for flat, value in values.items():
            if flat in _SECTIONS and isinstance(value, Mapping):
                value = _SECTIONS[flat](**value)
            if flat in _SECTIONS or flat in TABLES:
                sections[flat] = value
                continue
            section, _, name = flat.partition("_")
            if f"{section}.{name}" not in _BY_NAME:
                raise TypeError(f"no setting {flat!r} (names are section_key: proxy_port)")
            changes.setdefault(section, {})[name] = value
        for section, change in changes.items():
            current = sections.get(section, getattr(self, section))
            sections[section] = msgspec.structs.replace(current, **change)
        return msgspec.structs.replace(self, **sections)

    def to_env(self) -> dict[str, str]:
        """These settings as SLOTWISE_* variables (to hand to worker processes)."""
        env = {key.env: _text(getattr(getattr(self, key.section), key.name)) for key in KEYS}
        for table, variable in TABLES.items():
            env[variable] = json.dumps(getattr(self, table))
        return env


# -- what the model declares, derived once -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Key:
    """One setting: ``section.name`` in the file, ``env`` in the environment."""

    section: str
    name: str
    kind: Any  # the type, without its metadata
    default: Any
    help: str
    env: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    check: Callable[[Any], object] | None = None

    @property
    def full(self) -> str:
        return f"{self.section}.{self.name}"

    @property
    def flag(self) -> str:
        """How a flag is named in messages when its command does not say."""
        return "--" + self.name.replace("_", "-")


def _metadata(annotation: Any) -> tuple[Any, dict[str, Any]]:
    """The bare type and the merged msgspec.Meta fields of an Annotated type."""
    if typing.get_origin(annotation) is not Annotated:
        return annotation, {}
    merged: dict[str, Any] = {}
    for meta in annotation.__metadata__:
        if isinstance(meta, msgspec.Meta):
            for name in ("ge", "gt", "le", "description"):
                if getattr(meta, name) is not None:
                    merged[name] = getattr(meta, name)
            merged.update(meta.extra or {})
    return annotation.__origin__, merged


def _scheme(section: str, name: str) -> str:
    return f"{PREFIX}{section}_{name}".upper()


def _derive() -> tuple[dict[str, type[msgspec.Struct]], tuple[Key, ...], dict[str, str]]:
    sections: dict[str, type[msgspec.Struct]] = {}
    keys: list[Key] = []
    tables: dict[str, str] = {}
    for section in msgspec.structs.fields(Settings):
        kind, meta = _metadata(section.type)
        if not (isinstance(kind, type) and issubclass(kind, msgspec.Struct)):
            tables[section.name] = meta["env"]  # a whole table handed to its owners
            continue
        sections[section.name] = kind
        for field in msgspec.structs.fields(kind):
            bare, meta = _metadata(field.type)
            env = meta.get("env") or _scheme(section.name, field.name)
            keys.append(
                Key(
                    section.name,
                    field.name,
                    bare,
                    field.default,
                    meta["description"],  # every key has its one line of help
                    env,
                    meta.get("ge"),
                    meta.get("gt"),
                    meta.get("le"),
                    meta.get("check"),
                )
            )
    return sections, tuple(keys), tables


_SECTIONS, KEYS, TABLES = _derive()
_BY_NAME: Final = {key.full: key for key in KEYS}
_BY_ENV: Final = {key.env: key for key in KEYS}


# -- loading ---------------------------------------------------------------------------------


def load_settings(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    flags: Mapping[str, str] | None = None,
) -> Settings:
    """Read the file (if given), then the environment, then ``overrides`` (``section.name`` ->
    value, None meaning not given; ``flags`` names their flags in messages); validate it all.

    Raises ConfigError listing every problem.
    """
    document: dict[str, Any] = {}
    if path is not None:
        document = _read(path)
    return settings_from_document(document, str(path), environ, overrides, flags=flags)


def settings_from_document(
    document: Mapping[str, Any],
    label: str,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    flags: Mapping[str, str] | None = None,
) -> Settings:
    """:func:`load_settings` for a parsed TOML document; ``label`` names it in messages."""
    environ = os.environ if environ is None else environ
    problems: list[Problem] = []
    given: dict[str, tuple[Any, str]] = {}  # section.name or table -> (value, where)
    _from_document(document, label, given, problems)
    _from_environ(environ, given, problems)
    for name, value in (overrides or {}).items():
        if value is not None:
            flag = (flags or {}).get(name) or _BY_NAME[name].flag
            given[name] = (str(value) if isinstance(value, Path) else value, flag)
    values: dict[str, Any] = {section: {} for section in _SECTIONS}
    for name, (raw, where) in given.items():
        try:
            if name in TABLES:
                values[name] = _table(name, raw)
            else:
                key = _BY_NAME[name]
                values[key.section][key.name] = _value(key, raw)
        except ValueError as exc:
            problems.append(Problem("invalid_value", str(exc), where))
    for section, cls in _SECTIONS.items():
        try:  # a section's own checks across its keys (EventsConfig.__post_init__)
            values[section] = cls(**values[section])
        except ValueError as exc:
            problems.append(Problem("invalid_value", str(exc), f"[{section}]"))
    if problems:
        raise ConfigError(problems)
    return Settings(**values)


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problem = Problem(
            "config_unreadable", "no such file", str(path), "pass --config with an existing file"
        )
    except OSError as exc:  # a directory, no permission
        problem = Problem("config_unreadable", f"cannot read ({exc.strerror or exc})", str(path))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        problem = Problem("config_unreadable", f"not valid TOML: {exc}", str(path))
    raise ConfigError([problem])


def _from_document(
    document: Mapping[str, Any],
    label: str,
    given: dict[str, tuple[Any, str]],
    problems: list[Problem],
) -> None:
    for section, entries in document.items():
        if section in TABLES:
            given[section] = (entries, f"{label}: [{section}]")
            continue
        if section not in _SECTIONS:
            names = list(entries) if isinstance(entries, dict) else [None]
            for name in names:
                full = f"{section}.{name}" if name is not None else section
                message = f"unknown key '{full}'{_suggest_key(full)}"
                problems.append(Problem("unknown_key", message, label))
            continue
        if not isinstance(entries, dict):
            problems.append(
                Problem("invalid_value", f"'{section}' must be a [{section}] table", label)
            )
            continue
        for name, value in entries.items():
            full = f"{section}.{name}"
            if full in _BY_NAME:
                given[full] = (value, f"{label}: {full}")
            else:
                message = f"unknown key '{full}'{_suggest_key(full)}"
                problems.append(Problem("unknown_key", message, label))


def _from_environ(
    environ: Mapping[str, str], given: dict[str, tuple[Any, str]], problems: list[Problem]
) -> None:
    tables = {variable: table for table, variable in TABLES.items()}
    for variable in sorted(environ):
        if not variable.startswith(PREFIX) or variable in NOT_SETTINGS:
            continue
        where = f"environment {variable}"
        text = environ[variable]
        if variable in _BY_ENV:
            key = _BY_ENV[variable]
            if variable != _scheme(key.section, key.name):  # an irregular name: say which key
                where = f"{where} ({key.full})"
            given[key.full] = (text, where)
        elif variable in tables:
            if not text:
                continue
            try:
                given[tables[variable]] = (json.loads(text), where)
            except ValueError as exc:
                problems.append(Problem("invalid_value", f"not valid JSON: {exc}", where))
        elif variable in RENAMED:
            hint = f"set {RENAMED[variable]}"
            problems.append(Problem("renamed_variable", "is no longer read", where, hint))
        else:
            # compared without the prefix every name shares, which would make all look close
            known = [name.removeprefix(PREFIX) for name in (*_BY_ENV, *tables, *NOT_SETTINGS)]
            close = difflib.get_close_matches(variable.removeprefix(PREFIX), known, n=1)
            hint = (
                f"did you mean {PREFIX}{close[0]}?"
                if close
                else "unset it; docs/proxy.md lists the variables"
            )
            problems.append(Problem("unknown_variable", "is not a slotwise setting", where, hint))


def _table(section: str, raw: Any) -> dict[str, dict[str, Any]]:
    """``[plugins.NAME]`` tables; the providers validate their contents when built."""
    if not isinstance(raw, dict):
        raise ValueError(f"[{section}] must be a table of [{section}.NAME] tables")
    for name, table in raw.items():
        if not isinstance(table, dict):
            raise ValueError(f"'{section}.{name}' must be a [{section}.{name}] table")
    return {name: dict(table) for name, table in raw.items()}


def _value(key: Key, raw: Any) -> Any:
    value = _coerce(key, raw)
    if key.check is not None:
        key.check(value)
    return value


_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off"})


def _coerce(key: Key, raw: Any) -> Any:
    """``raw`` (from TOML, or a string from the environment or a flag) as the key's type."""
    kind = key.kind
    if kind == tuple[str, ...]:
        if isinstance(raw, str):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if isinstance(raw, list | tuple) and all(isinstance(v, str) for v in raw):
            return tuple(raw)
        raise ValueError("must be a list of strings")
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE
        raise ValueError(f"must be true or false, not {raw!r}")
    if kind in (int, float):
        return _number(key, raw)
    if typing.get_origin(kind) is typing.Literal:
        if raw not in typing.get_args(kind):
            choices = ", ".join(map(str, typing.get_args(kind)))
            raise ValueError(f"must be one of {choices}, not {raw!r}")
        return raw
    optional = isinstance(kind, types.UnionType) and type(None) in typing.get_args(kind)
    if optional and raw in ("", None):
        return None
    if not isinstance(raw, str):
        raise ValueError(f"must be a string, not {raw!r}")
    return raw


def _number(key: Key, raw: Any) -> float:
    kind = key.kind
    if isinstance(raw, bool):
        raise ValueError(f"must be a number, not {raw!r}")
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise ValueError(
            f"must be {'an integer' if kind is int else 'a number'}, not {raw!r}"
        ) from None
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number, not {raw!r}")
    if key.ge is not None and value < key.ge:
        raise ValueError(f"must be at least {key.ge:g}, not {value}")
    if key.gt is not None and value <= key.gt:
        raise ValueError(f"must be more than {key.gt:g}, not {value}")
    if key.le is not None and value > key.le:
        raise ValueError(f"must be at most {key.le:g}, not {value}")
    return value  # type: ignore[no-any-return]


def _text(value: Any) -> str:
    """A value as an environment variable holds it (read back by :func:`_coerce`)."""
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _suggest_key(full: str) -> str:
    section, _, name = full.partition(".")
    if section in _SECTIONS:
        names = [k.name for k in KEYS if k.section == section]
        close = difflib.get_close_matches(name, names, n=1)
        if close:
            return f" (did you mean '{section}.{close[0]}'?)"
        return f" ([{section}] has {', '.join(names)})"
    close = difflib.get_close_matches(full, list(_BY_NAME), n=1)
    if not close and not name:  # a key outside any section: which section has it?
        close = [k.full for k in KEYS if k.name == section][:1]
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f" (the sections are {', '.join([*_SECTIONS, *TABLES])})"


# -- the key table of docs/proxy.md --------------------------------------------------------------


def key_table() -> str:
    """Every key as a row of docs/proxy.md's table: key, variable, default, meaning."""
    rows = ["| key | environment | default | meaning |", "|---|---|---|---|"]
    for key in KEYS:
        rows.append(f"| `{key.full}` | `{key.env}` | {_shown(key.default)} | {key.help} |")
    for table, variable in TABLES.items():
        field = next(f for f in msgspec.structs.fields(Settings) if f.name == table)
        _, meta = _metadata(field.type)
        rows.append(f"| `{table}.NAME` | `{variable}` (JSON) | (none) | {meta['description']} |")
    return "\n".join(rows)


def _shown(default: Any) -> str:
    if isinstance(default, tuple):
        return ", ".join(f"`{item}`" for item in default) or "`[]`"
    if isinstance(default, bool):
        return f"`{'true' if default else 'false'}`"
    if default is None:
        return "(none)"
    return f"`{default}`" if default != "" else '`""`'
