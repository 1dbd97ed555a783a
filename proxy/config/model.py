"""The configuration model: :class:`Settings`, one struct per section, and what is derived
from the fields once: the keys with their variables (:data:`KEYS`), the tables handed whole to
their owners (:data:`TABLES`) and the key table of docs/proxy.md (:func:`key_table`)."""

from __future__ import annotations

import json
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final

import msgspec

from slotwise.proxy.catalogue.config import CatalogueConfig
from slotwise.proxy.config.sections import (
    AdaptersConfig,
    BanditConfig,
    DashboardConfig,
    GuardrailConfig,
    LogConfig,
    NotifyConfig,
    ProxyConfig,
    StoreConfig,
    TrackingConfig,
    UpstreamConfig,
)
from slotwise.proxy.events.config import EventsConfig
from slotwise.proxy.recommend.config import RecsConfig

PREFIX: Final = "SLOTWISE_"


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The validated configuration: one struct per section (``settings.proxy.port``)."""

    upstream: UpstreamConfig = msgspec.field(default_factory=UpstreamConfig)
    proxy: ProxyConfig = msgspec.field(default_factory=ProxyConfig)
    store: StoreConfig = msgspec.field(default_factory=StoreConfig)
    tracking: TrackingConfig = msgspec.field(default_factory=TrackingConfig)
    adapters: AdaptersConfig = msgspec.field(default_factory=AdaptersConfig)
    bandit: BanditConfig = msgspec.field(default_factory=BanditConfig)
    events: EventsConfig = msgspec.field(default_factory=EventsConfig)
    notify: NotifyConfig = msgspec.field(default_factory=NotifyConfig)
    offers: Annotated[
        dict[str, Any],
        msgspec.Meta(
            description="money, budgets and guardrails of the offer sets, `[offers]` "
            "(base_currency, rates, shipping_cost, margins, budgets, max_costliest_share, cart "
            "paths: docs/offers.md); validated when the proxy or the learner starts",
            extra={"env": "SLOTWISE_OFFERS_CONFIG"},
        ),
    ] = msgspec.field(default_factory=dict)
    catalogue: CatalogueConfig = msgspec.field(default_factory=CatalogueConfig)
    recommendations: RecsConfig = msgspec.field(default_factory=RecsConfig)
    log: LogConfig = msgspec.field(default_factory=LogConfig)
    guardrail: GuardrailConfig = msgspec.field(default_factory=GuardrailConfig)
    dashboard: DashboardConfig = msgspec.field(default_factory=DashboardConfig)
    plugins: Annotated[
        dict[str, dict[str, Any]],
        msgspec.Meta(
            description="one table per signal provider, `[plugins.NAME]` (signals.md); "
            "validated when the providers are built, naming the provider",
            extra={"env": "SLOTWISE_PLUGINS_CONFIG"},
        ),
    ] = msgspec.field(default_factory=dict)
    webhooks: Annotated[
        dict[str, dict[str, Any]],
        msgspec.Meta(
            description='one table per webhook endpoint a `notify webhook "NAME"` names, '
            "`[webhooks.NAME]` with `url`, `secrets_env` (variables holding `whsec_` secrets, "
            "newest first) and an optional `timeout` (notifications.md)",
            extra={"env": "SLOTWISE_WEBHOOKS_CONFIG"},
        ),
    ] = msgspec.field(default_factory=dict)
    audience_pushes: Annotated[
        dict[str, dict[str, Any]],
        msgspec.Meta(
            description="one table per scheduled push of an audience to a webhook, "
            "`[audience_pushes.NAME]` with `audience` (a trigger's name), `webhook` (a "
            "`[webhooks.NAME]`) and `interval` (seconds); run by the notification sender "
            "(notifications.md)",
            extra={"env": "SLOTWISE_AUDIENCE_PUSHES_CONFIG"},
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
            if flat in SECTIONS and isinstance(value, Mapping):
                value = SECTIONS[flat](**value)
            if flat in SECTIONS or flat in TABLES:
                sections[flat] = value
                continue
            section, _, name = flat.partition("_")
            if f"{section}.{name}" not in KEYS_BY_NAME:
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


def env_name(section: str, name: str) -> str:
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
            env = meta.get("env") or env_name(section.name, field.name)
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


SECTIONS, KEYS, TABLES = _derive()
KEYS_BY_NAME: Final = {key.full: key for key in KEYS}
KEYS_BY_ENV: Final = {key.env: key for key in KEYS}


def _text(value: Any) -> str:
    """A value as an environment variable holds it (read back by :func:`_coerce`)."""
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


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
