"""Proxy configuration: one TOML file (``slotwise.toml``) plus ``SLOTWISE_*`` variables.

Every key is ``section.name`` in the file and ``SLOTWISE_SECTION_NAME`` in the environment
(the environment wins; command-line flags win over both). Everything is validated once, at
start, and every problem is reported together with where it came from; the proxy never starts
on a half-valid configuration. ``KEYS`` is the table of keys, types, defaults and meanings
(docs/proxy.md lists them).

Two sections are tables handed whole to their owners: ``[events]`` (EventsConfig, validated
here) and ``[plugins.NAME]`` (each provider's config, validated when the providers are built at
start-up, naming the provider). In the environment they are JSON, ``SLOTWISE_EVENTS_CONFIG``
and ``SLOTWISE_PLUGINS_CONFIG``: that is how ``slotwise serve`` hands them to its workers.
(``SLOTWISE_PLUGINS`` is another thing: the selection of plugins to load.)
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from slotwise.proxy.http_hygiene import ForwardingPolicy
from slotwise.proxy.upstream import Origin


class ConfigError(Exception):
    """Invalid configuration; ``problems`` lists each one as ``where: what (fix)``."""

    code = "config_invalid"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Key:
    name: str  # section.name
    type: type
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None

    @property
    def env(self) -> str:
        return "SLOTWISE_" + self.name.replace(".", "_").upper()

    @property
    def attribute(self) -> str:
        return self.name.replace(".", "_")


KEYS: Final[tuple[Key, ...]] = (
    Key("upstream.url", str, "", "origin every request goes to, e.g. http://adserver:8000"),
    Key("upstream.connect_timeout", float, 2.0, "seconds to open a connection (then 504)", 0.001),
    Key("upstream.timeout", float, 10.0, "seconds to response headers (504)", 0.001),
    Key("upstream.read_timeout", float, 30.0, "longest silence inside a response body", 0.001),
    Key("upstream.max_connections", int, 256, "connections per worker to the upstream", 1),
    Key("upstream.max_idle", int, 128, "idle keep-alive connections kept per worker", 0),
    Key("upstream.idle_expiry", float, 4.0, "seconds an idle connection is reused", 0.0),
    Key("proxy.host", str, "127.0.0.1", "address to listen on"),
    Key("proxy.port", int, 8080, "port to listen on", 1, 65535),
    Key("proxy.workers", int, 1, "worker processes", 1),
    Key("proxy.policies", str, "policies", "directory of *.sw policy files"),
    Key("proxy.reload_interval", float, 1.0, "seconds between policy change checks (0: off)", 0.0),
    Key("proxy.decision_deadline_ms", float, 10.0, "engine time budget per response", 0.01),
    Key("proxy.signals_deadline_ms", float, 50.0, "longest wait for signal providers", 0.0),
    Key("proxy.max_header_bytes", int, 16384, "request header block limit (431 beyond)", 256),
    Key("proxy.max_body_bytes", int, 1048576, "request body limit (413 beyond)", 0),
    Key("proxy.body_timeout", float, 30.0, "seconds to receive a request body (408 beyond)", 0.001),
    Key("proxy.max_rewrite_bytes", int, 2097152, "larger responses stream through unchanged", 1),
    Key("proxy.trusted_proxies", list, [], "CIDRs whose X-Forwarded-For is trusted"),
    Key("store.url", str, "memory://", "state store: sqlite:///path, redis://..., memory://"),
    Key("tracking.public_url", str, "", "the proxy's public origin for tracker URLs"),
    Key("tracking.secret", str, "", "click-signing key (>= 16 chars); random per start if empty"),
    Key("tracking.user_cookie", str, "sw_uid", "cookie holding the pseudonymous user id"),
    Key("adapters.json_campaign_id", list, [], "JSON paths of the campaign id (generic JSON)"),
    Key("adapters.json_creative_id", list, [], "JSON paths of the creative id"),
    Key("adapters.json_placement", list, [], "JSON paths of the placement"),
    Key("adapters.json_impression_trackers", list, [], "JSON paths of impression tracker lists"),
    Key("adapters.json_click_trackers", list, [], "JSON paths of click tracker lists"),
    Key("adapters.json_click_urls", list, [], "JSON paths of click URLs to sign and wrap"),
    Key("bandit.models_dir", str, "", "model store directory (empty: rules and uniform choice)"),
    Key("bandit.reload_interval", float, 5.0, "seconds between checks for new models", 0.1),
)  # fmt: skip
# whole tables handed to their owners: section -> environment variable (JSON)
TABLES: Final = {"events": "SLOTWISE_EVENTS_CONFIG", "plugins": "SLOTWISE_PLUGINS_CONFIG"}
_BY_NAME: Final = {key.name: key for key in KEYS}


@dataclass(frozen=True, slots=True)
class Settings:
    """The validated configuration (attribute = key with '.' replaced by '_')."""

    upstream_url: str = ""
    upstream_connect_timeout: float = 2.0
    upstream_timeout: float = 10.0
    upstream_read_timeout: float = 30.0
    upstream_max_connections: int = 256
    upstream_max_idle: int = 128
    upstream_idle_expiry: float = 4.0
    proxy_host: str = "127.0.0.1"
    proxy_port: int = 8080
    proxy_workers: int = 1
    proxy_policies: str = "policies"
    proxy_reload_interval: float = 1.0
    proxy_decision_deadline_ms: float = 10.0
    proxy_signals_deadline_ms: float = 50.0
    proxy_max_header_bytes: int = 16384
    proxy_max_body_bytes: int = 1048576
    proxy_body_timeout: float = 30.0
    proxy_max_rewrite_bytes: int = 2097152
    proxy_trusted_proxies: tuple[str, ...] = ()
    store_url: str = "memory://"
    tracking_public_url: str = ""
    tracking_secret: str = ""
    tracking_user_cookie: str = "sw_uid"
    adapters_json_campaign_id: tuple[str, ...] = ()
    adapters_json_creative_id: tuple[str, ...] = ()
    adapters_json_placement: tuple[str, ...] = ()
    adapters_json_impression_trackers: tuple[str, ...] = ()
    adapters_json_click_trackers: tuple[str, ...] = ()
    adapters_json_click_urls: tuple[str, ...] = ()
    bandit_models_dir: str = ""
    bandit_reload_interval: float = 5.0
    events: Mapping[str, Any] = field(default_factory=dict)  # the [events] table
    plugins: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # [plugins.NAME]

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def to_env(self) -> dict[str, str]:
        """These settings as SLOTWISE_* variables (to hand to worker processes)."""
        env = {}
        for key in KEYS:
            value = getattr(self, key.attribute)
            env[key.env] = ",".join(value) if isinstance(value, tuple) else str(value)
        for section, variable in TABLES.items():
            env[variable] = json.dumps(getattr(self, section))
        return env


def load_settings(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read the file (if given), then the environment, then overrides; validate all of it."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    if path is not None:
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                [f"{path}: no such file (pass --config with an existing file)"]
            ) from None
        except OSError as exc:  # a directory, no permission
            raise ConfigError([f"{path}: cannot read ({exc.strerror or exc})"]) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
        for section, entries in table.items():
            if section in TABLES:
                values[section] = (entries, f"{path}: [{section}]")
                continue
            if not isinstance(entries, dict):
                problems.append(f"{path}: '{section}' must be a [section] table")
                continue
            for name, value in entries.items():
                full = f"{section}.{name}"
                if full not in _BY_NAME:
                    problems.append(f"{path}: unknown key '{full}'{_suggest(full)}")
                    continue
                values[full] = (value, f"{path}: {full}")
    for key in KEYS:
        if key.env in environ:
            values[key.name] = (environ[key.env], f"environment {key.env}")
    for section, variable in TABLES.items():
        if environ.get(variable):
            try:
                values[section] = (json.loads(environ[variable]), f"environment {variable}")
            except ValueError as exc:
                problems.append(f"environment {variable}: not valid JSON: {exc}")
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = (value, f"--{name.split('.')[-1].replace('_', '-')}")
    parsed: dict[str, Any] = {}
    for name, (raw, where) in values.items():
        if name in TABLES:
            try:
                parsed[name] = _table(name, raw)
            except ValueError as exc:
                problems.append(f"{where}: {exc}")
            continue
        key = _BY_NAME[name]
        try:
            parsed[key.attribute] = _coerce(key, raw)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
    settings = Settings(**parsed)
    problems += _check(settings)
    if problems:
        raise ConfigError(problems)
    return settings


def _table(section: str, raw: Any) -> dict[str, Any]:
    """A whole table; ``[events]`` is validated here, plugin tables when providers are built."""
    if not isinstance(raw, dict):
        raise ValueError(f"[{section}] must be a table")
    if section == "events":
        from slotwise.proxy.events.config import EventsConfig

        EventsConfig.load(raw, env={})  # ValueError names the field
        return dict(raw)
    for name, table in raw.items():
        if not isinstance(table, dict):
            raise ValueError(f"'plugins.{name}' must be a [plugins.{name}] table")
    return {name: dict(table) for name, table in raw.items()}


def _coerce(key: Key, raw: Any) -> Any:
    if key.type is list:
        if isinstance(raw, str):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if isinstance(raw, list | tuple) and all(isinstance(v, str) for v in raw):
            return tuple(raw)
        raise ValueError("must be a list of strings")
    if key.type is bool:
        raise ValueError("booleans are not used")  # pragma: no cover
    if key.type in (int, float):
        if isinstance(raw, bool):
            raise ValueError(f"must be a number, not {raw!r}")
        try:
            value = key.type(raw)
        except (TypeError, ValueError):
            raise ValueError(
                f"must be {'an integer' if key.type is int else 'a number'}, not {raw!r}"
            ) from None
        if not math.isfinite(value):
            raise ValueError(f"must be a finite number, not {raw!r}")
        if key.minimum is not None and value < key.minimum:
            raise ValueError(f"must be at least {key.minimum:g}, not {value}")
        if key.maximum is not None and value > key.maximum:
            raise ValueError(f"must be at most {key.maximum:g}, not {value}")
        return value
    if not isinstance(raw, str):
        raise ValueError(f"must be a string, not {raw!r}")
    return raw


def _check(settings: Settings) -> list[str]:
    problems = []
    if settings.upstream_url:
        try:
            Origin.parse(settings.upstream_url)
        except ValueError as exc:
            problems.append(f"upstream.url: {exc}")
    try:
        ForwardingPolicy.parse(settings.proxy_trusted_proxies)
    except ValueError as exc:
        problems.append(f"proxy.trusted_proxies: {exc}")
    try:
        ipaddress.ip_address(settings.proxy_host)
    except ValueError:
        problems.append(
            f"proxy.host: {settings.proxy_host!r} is not an IP address "
            "(listen on 127.0.0.1, 0.0.0.0 for every interface, or ::)"
        )
    if settings.tracking_secret and len(settings.tracking_secret) < 16:
        problems.append("tracking.secret: must be at least 16 characters (use a random string)")
    if settings.tracking_public_url and not settings.tracking_public_url.startswith(
        ("http://", "https://")
    ):
        problems.append("tracking.public_url: must start with http:// or https://")
    from slotwise.proxy.adapters.json import JsonFields

    try:
        JsonFields.from_strings(
            **{
                k.removeprefix("adapters_json_"): getattr(settings, k)
                for k in (key.attribute for key in KEYS)
                if k.startswith("adapters_json_")
            }
        )
    except ValueError as exc:
        problems.append(f"adapters: {exc}")
    return problems


def _suggest(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(_BY_NAME), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
