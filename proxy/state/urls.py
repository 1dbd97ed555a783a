"""Choose a store backend from its URL: an explicit scheme table, validated options.

    memory://[?max_log_entries=200000]
    sqlite:///var/lib/slotwise/state.db        (absolute path; sqlite://var/state.db is relative)
    redis://[user:password@]host:port/db
    redis+cluster://host:port,host:port,...

Options are query parameters (``?timeout=0.03&write_timeout=1``); unknown ones are an error
so that a typo does not silently fall back to a default.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl, unquote, urlsplit

from slotwise.proxy.state.base import Store, StoreConfigError

_SECONDS = ("timeout", "write_timeout")


def _options(query: str, allowed: tuple[str, ...], url: str) -> dict[str, str]:
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        allowed_text = ", ".join(allowed) or "none"
        raise StoreConfigError(
            f"unknown option {unknown[0]!r} in store URL {redact(url)} (allowed: {allowed_text})"
        )
    return options


def _seconds(options: dict[str, str], url: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in _SECONDS:
        if name in options:
            try:
                value = float(options[name])
            except ValueError:
                value = -1.0
            if not 0 < value <= 60:
                raise StoreConfigError(
                    f"store URL {redact(url)}: {name} must be seconds in (0, 60],"
                    f" got {options[name]!r}"
                )
            out[name] = value
    return out


def _memory(url: str) -> Store:
    from slotwise.proxy.state.memory import MemoryStore

    parts = urlsplit(url)
    options = _options(parts.query, ("max_log_entries",), url)
    if parts.netloc or parts.path not in ("", "/"):
        raise StoreConfigError(f"memory:// takes no host or path, got {url!r}")
    if "max_log_entries" not in options:
        return MemoryStore()
    text = options["max_log_entries"]
    if not text.isdigit() or int(text) < 1:
        raise StoreConfigError(
            f"store URL {url}: max_log_entries must be a whole number of entries >= 1, got {text!r}"
        )
    return MemoryStore(max_log_entries=int(text))


def _sqlite(url: str) -> Store:
    from slotwise.proxy.state.sqlite import SQLiteStore

    rest, _, query = url[len("sqlite://") :].partition("?")
    options = _options(query, ("synchronous", *_SECONDS), url)
    path = unquote(rest)
    if not path:
        raise StoreConfigError(
            f"store URL {url!r} has no file path; write sqlite:///absolute/path/state.db"
        )
    return SQLiteStore(
        path, synchronous=options.get("synchronous", "full"), **_seconds(options, url)
    )


def _host_port(text: str, url: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        host, port = text, "6379"
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not host or not 0 < number < 65536:
        raise StoreConfigError(f"store URL {redact(url)}: {text!r} is not host:port")
    return host, number


def _redis(url: str, *, cluster: bool) -> Store:
    from slotwise.proxy.state.redis import RedisStore

    parts = urlsplit(url)
    options = _options(parts.query, _SECONDS, url)
    location = parts.netloc.rpartition("@")[2]
    if not location:
        raise StoreConfigError(f"store URL {redact(url)} needs host:port")
    nodes = [_host_port(n, url) for n in location.split(",") if n]
    db_text = parts.path.strip("/") or "0"
    if not db_text.isdigit():
        raise StoreConfigError(f"store URL {redact(url)}: database {db_text!r} is not a number")
    if not cluster and len(nodes) != 1:
        raise StoreConfigError(
            f"store URL {redact(url)} names several hosts; use redis+cluster:// for a cluster"
        )
    return RedisStore(
        nodes,
        db=int(db_text),
        cluster=cluster,
        password=unquote(parts.password) if parts.password else None,
        username=unquote(parts.username) if parts.username else None,
        **_seconds(options, url),
    )


SCHEMES: dict[str, Callable[[str], Store]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "redis": lambda url: _redis(url, cluster=False),
    "redis+cluster": lambda url: _redis(url, cluster=True),
}


def open_store(url: str) -> Store:
    """A not-yet-started store for ``url``; ``async with open_store(url) as store: ...``."""
    scheme, sep, _ = url.partition("://")
    factory = SCHEMES.get(scheme.lower()) if sep else None
    if factory is None:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        raise StoreConfigError(f"unknown store URL {redact(url)!r}: it must start with {known}")
    return factory(url)


def redact(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()
