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

from slotwise.proxy.config.loader import (
    NOT_SETTINGS,
    RENAMED,
    ConfigError,
    load_settings,
    settings_from_document,
)
from slotwise.proxy.config.model import KEYS, TABLES, Key, Settings, key_table
from slotwise.proxy.config.sections import (
    AdaptersConfig,
    BanditConfig,
    ProxyConfig,
    StoreConfig,
    TrackingConfig,
    UpstreamConfig,
)

__all__ = [
    "KEYS",
    "NOT_SETTINGS",
    "RENAMED",
    "TABLES",
    "AdaptersConfig",
    "BanditConfig",
    "ConfigError",
    "Key",
    "ProxyConfig",
    "Settings",
    "StoreConfig",
    "TrackingConfig",
    "UpstreamConfig",
    "key_table",
    "load_settings",
    "settings_from_document",
]
