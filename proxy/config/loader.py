"""Reading the configuration: the file, then ``SLOTWISE_*`` variables, then flags (each wins
over the one before), validated once; every problem is reported with where it came from."""

from __future__ import annotations

import difflib
import json
import math
import os
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from slotwise.errors import CONFIG, Problem, SlotwiseError
from slotwise.proxy.config.model import (
    KEYS,
    KEYS_BY_ENV,
    KEYS_BY_NAME,
    PREFIX,
    SECTIONS,
    TABLES,
    Key,
    Settings,
    env_name,
)

# SLOTWISE_* variables that are not settings: variable -> what it is
NOT_SETTINGS: Final[Mapping[str, str]] = {
    "SLOTWISE_CONFIG": "the slotwise.toml to read when a command gets no --config",
    "SLOTWISE_DEBUG": "set to 1: an internal error prints its traceback",
    "SLOTWISE_PLUGINS": "which signal providers load (plugins.md)",
    "SLOTWISE_PURE": "set to 1: the request path runs (and bootstraps) in pure Python, "
    "not compiled (operations.md)",
    "SLOTWISE_REQUIRE_COMPILED": "set to 1 (CI): a request path that should have compiled "
    "and did not fails the build and the tests (operations.md)",
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
            flag = (flags or {}).get(name) or KEYS_BY_NAME[name].flag
            given[name] = (str(value) if isinstance(value, Path) else value, flag)
    values: dict[str, Any] = {section: {} for section in SECTIONS}
    for name, (raw, where) in given.items():
        try:
            if name in TABLES:
                values[name] = _table(name, raw)
            else:
                key = KEYS_BY_NAME[name]
                values[key.section][key.name] = _value(key, raw)
        except ValueError as exc:
            problems.append(Problem("invalid_value", str(exc), where))
    for section, cls in SECTIONS.items():
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
        if section not in SECTIONS:
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
            if full in KEYS_BY_NAME:
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
        if variable in KEYS_BY_ENV:
            key = KEYS_BY_ENV[variable]
            if variable != env_name(key.section, key.name):  # an irregular name: say which key
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
            known = [name.removeprefix(PREFIX) for name in (*KEYS_BY_ENV, *tables, *NOT_SETTINGS)]
            close = difflib.get_close_matches(variable.removeprefix(PREFIX), known, n=1)
            hint = (
                f"did you mean {PREFIX}{close[0]}?"
                if close
                else "unset it; docs/proxy.md lists the variables"
            )
            problems.append(Problem("unknown_variable", "is not a slotwise setting", where, hint))


def _table(section: str, raw: Any) -> dict[str, Any]:
    """``[plugins.NAME]`` tables (the providers validate their contents when built), and
    ``[offers]`` (validated here: slotwise.proxy.offers_config)."""
    if section == "offers":
        from slotwise.proxy.offers_config import offers_config

        if not isinstance(raw, dict):
            raise ValueError("[offers] must be a table")
        try:
            offers_config(raw)
        except ValueError as exc:
            raise ValueError(f"offers.{exc}") from None
        return dict(raw)
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


def _suggest_key(full: str) -> str:
    section, _, name = full.partition(".")
    if section in SECTIONS:
        names = [k.name for k in KEYS if k.section == section]
        close = difflib.get_close_matches(name, names, n=1)
        if close:
            return f" (did you mean '{section}.{close[0]}'?)"
        return f" ([{section}] has {', '.join(names)})"
    close = difflib.get_close_matches(full, list(KEYS_BY_NAME), n=1)
    if not close and not name:  # a key outside any section: which section has it?
        close = [k.full for k in KEYS if k.name == section][:1]
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f" (the sections are {', '.join([*SECTIONS, *TABLES])})"
