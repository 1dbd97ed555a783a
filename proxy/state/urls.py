"""Choose a store backend from its URL: an explicit scheme table, validated options.

    memory://[?max_log_entries=200000]
    sqlite:///var/lib/slotwise/state.db        (absolute path; sqlite://var/state.db is relative,
                                                sqlite://~/state.db is in the home directory)
    redis://[user:password@]host[:port][/db]    (host may be a bracketed IPv6 address: [::1])
    redis+cluster://host:port,host:port,...    (redis, cluster: ?wait_replicas=1&wait_timeout=0.5)
    redis://host:port?archive=/var/lib/slotwise/archive&archive_after=3600
                                               (logs older than an hour moved to that directory)

Options are query parameters (``?timeout=0.03&write_timeout=1``); unknown or repeated ones are
an error so that a typo does not silently fall back to a default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from urllib.parse import parse_qsl, unquote, urlsplit

from slotwise.proxy.state.base import Store, StoreConfigError

_SECONDS = ("timeout", "write_timeout")
# float() also takes "1_0", " 5" and non-ASCII digits: an option is plain ASCII decimal only.
_DECIMAL = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
#: The most entries a memory:// log may keep: about 10 GB of 1 KB decision records, already
#: far beyond what a test or one-off tool needs; a larger number is a typo, not a plan.
MAX_LOG_ENTRIES = 10_000_000
#: Longer than any log's readers look back at a live log: a larger number is a typo.
MAX_ARCHIVE_AFTER = 30 * 86400.0
#: More replicas than any one primary plausibly has: a larger number is a typo.
MAX_WAIT_REPLICAS = 16
_ENCODE_HINT = (
    "%-encode special characters in the user and password"
    " (@ as %40, : as %3A, / as %2F, ? as %3F, # as %23, % as %25)"
)


def _options(query: str, allowed: tuple[str, ...], url: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in allowed:
            allowed_text = ", ".join(allowed) or "none"
            raise StoreConfigError(
                f"unknown option {name!r} in store URL {redact(url)} (allowed: {allowed_text})"
            )
        if name in options:  # which one was meant? the last silently winning hides a typo
            raise StoreConfigError(
                f"store URL {redact(url)}: option {name!r} is given more than once; keep one"
            )
        options[name] = value
    return options


def _is_digits(text: str) -> bool:
    # str.isdigit() alone accepts "٣" and "²", which int() then reads (or fails on)
    return text.isascii() and text.isdigit()


def _seconds(
    options: dict[str, str], url: str, names: tuple[str, ...] = _SECONDS
) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in names:
        if name in options:
            text = options[name]
            value = float(text) if _DECIMAL.fullmatch(text) else -1.0
            if not 0 < value <= 60:
                raise StoreConfigError(
                    f"store URL {redact(url)}: {name} must be seconds in (0, 60], got {text!r}"
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
    if not _is_digits(text) or not 1 <= int(text) <= MAX_LOG_ENTRIES:
        raise StoreConfigError(
            f"store URL {url}: max_log_entries must be a whole number of entries from 1 to"
            f" {MAX_LOG_ENTRIES:,}, got {text!r}"
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
    if "\x00" in path:
        raise StoreConfigError(f"store URL {url!r}: the file path contains a NUL character")
    return SQLiteStore(
        _home(path, url), synchronous=options.get("synchronous", "full"), **_seconds(options, url)
    )


def _home(path: str, url: str) -> str:
    # without this, sqlite://~/state.db creates a directory literally named "~"
    if not path.startswith("~"):
        return path
    expanded = os.path.expanduser(path)
    if expanded.startswith("~"):
        raise StoreConfigError(
            f"store URL {url!r}: cannot expand {path.split('/')[0]!r} (no such user or no HOME);"
            " write the full path"
        )
    return expanded


def _split_redis(url: str) -> tuple[str | None, str, str, str]:
    """(userinfo or None, host list, path, query) of a redis URL.

    The userinfo ends at the *last* "@": an unencoded "/", "?" or "#" in a password would make
    a standard URL parser end the host part early and show the rest of the password as a path,
    an option or a fragment (and a host taken from the password).
    """
    rest = url.split("://", 1)[1]
    userinfo, at, after = rest.rpartition("@")
    if at and any(c in userinfo for c in "/?#"):
        raise StoreConfigError(
            f"store URL {redact(url)}: the part before '@' contains '/', '?' or '#'; {_ENCODE_HINT}"
        )
    after, hash_sign, _fragment = after.partition("#")
    if hash_sign:
        raise StoreConfigError(f"store URL {redact(url)}: unexpected '#...' after the address")
    before_query, _, query = after.partition("?")
    location, slash, path = before_query.partition("/")
    return (userinfo if at else None), location, slash + path, query


def _host_port(text: str, url: str) -> tuple[str, int]:
    if text.startswith("["):  # [IPv6] or [IPv6]:port; the brackets never reach the resolver
        host, bracket, port = text[1:].partition("]")
        if not bracket or (port and not port.startswith(":")):
            raise StoreConfigError(f"store URL {redact(url)}: {text!r} is not [IPv6 address]:port")
        host, port = unquote(host), port[1:]  # a zone id is written %25: fe80::1%25eth0
    else:
        host, _, port = text.partition(":")
        if ":" in port:
            raise StoreConfigError(
                f"store URL {redact(url)}: {text!r} is ambiguous; write an IPv6 address in"
                " brackets: [::1]:6379"
            )
    if not host:
        raise StoreConfigError(
            f"store URL {redact(url)}: no host in {text!r}; write host:port, e.g. 127.0.0.1:6379"
        )
    number = int(port) if _is_digits(port) else (6379 if port == "" else -1)
    if not 0 < number < 65536:
        raise StoreConfigError(
            f"store URL {redact(url)}: port {port!r} of {text!r} is not a number from 1 to 65535"
        )
    return host, number


def _credentials(userinfo: str | None) -> tuple[str | None, str | None]:
    """(username, password); either is None when not given."""
    if userinfo is None:
        return None, None
    user, _, password = userinfo.partition(":")
    return unquote(user) or None, unquote(password) or None


def _redis(url: str, *, cluster: bool) -> Store:
    from slotwise.proxy.state.redis import ARCHIVE_AFTER, RedisStore

    userinfo, location, path, query = _split_redis(url)
    options = _options(
        query, (*_SECONDS, "wait_replicas", "wait_timeout", "archive", "archive_after"), url
    )
    if not location.strip(","):
        raise StoreConfigError(
            f"store URL {redact(url)} has no host; write host:port after '://', e.g. 127.0.0.1:6379"
        )
    nodes = [_host_port(n, url) for n in location.split(",") if n]
    db_text = path.strip("/") or "0"
    if not _is_digits(db_text):
        raise StoreConfigError(
            f"store URL {redact(url)}: database {db_text!r} (the /N part) is not a number"
        )
    if not cluster and len(nodes) != 1:
        raise StoreConfigError(
            f"store URL {redact(url)} names several hosts; use redis+cluster:// for a cluster"
        )
    username, password = _credentials(userinfo)
    replication = _replication(options, url)
    archive, archive_after = _archive(options, url, ARCHIVE_AFTER)
    return RedisStore(
        nodes,
        db=int(db_text),
        cluster=cluster,
        password=password,
        username=username,
        wait_replicas=int(replication.get("wait_replicas", 0)),
        wait_timeout=replication["wait_timeout"],
        archive=archive,
        archive_after=archive_after,
        **_seconds(options, url),
    )


def _archive(options: dict[str, str], url: str, default_after: float) -> tuple[str | None, float]:
    """``archive`` (a directory) and ``archive_after`` (seconds): where old log entries go."""
    directory = options.get("archive")
    after = options.get("archive_after")
    if directory is None:
        if after is not None:
            raise StoreConfigError(
                f"store URL {redact(url)}: archive_after needs archive=DIRECTORY (where the"
                " entries go)"
            )
        return None, default_after
    path = unquote(directory)
    if not path.startswith(("/", "~")) or "\x00" in path:
        raise StoreConfigError(
            f"store URL {redact(url)}: archive must be an absolute directory path (or ~/...),"
            f" got {directory!r}"
        )
    home = _home(path, url)
    if after is None:
        return home, default_after
    value = float(after) if _DECIMAL.fullmatch(after) else -1.0
    if not 0 <= value <= MAX_ARCHIVE_AFTER:
        raise StoreConfigError(
            f"store URL {redact(url)}: archive_after must be seconds from 0 to"
            f" {MAX_ARCHIVE_AFTER:g} (30 days), got {after!r}"
        )
    return home, value


def _replication(options: dict[str, str], url: str) -> dict[str, float]:
    """``wait_replicas`` and ``wait_timeout``: how many replicas must confirm a log append."""
    out: dict[str, float] = {}
    text = options.get("wait_replicas")
    if text is not None:
        if not _is_digits(text) or not 0 <= int(text) <= MAX_WAIT_REPLICAS:
            raise StoreConfigError(
                f"store URL {redact(url)}: wait_replicas must be a whole number of replicas from"
                f" 0 to {MAX_WAIT_REPLICAS}, got {text!r}"
            )
        out["wait_replicas"] = int(text)
    write_timeout = _seconds(options, url).get("write_timeout", 2.0)
    # by default half a second, or less when write_timeout (which bounds both) is shorter
    wait = _seconds(options, url, ("wait_timeout",)).get(
        "wait_timeout", min(0.5, write_timeout / 2)
    )
    if wait >= write_timeout:
        raise StoreConfigError(
            f"store URL {redact(url)}: wait_timeout ({wait:g} s) must be below write_timeout"
            f" ({write_timeout:g} s), which bounds the append and its WAIT together"
        )
    out["wait_timeout"] = wait
    return out


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
    """``url`` without its password, for messages and logs.

    Everything between the first ":" of the userinfo and the *last* "@" is hidden, so a
    password with unencoded "/", "?", "#" or "@" is hidden whole, not cut where a standard URL
    parser would end the host part.
    """
    scheme, sep, rest = url.partition("://")
    userinfo, at, after = rest.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    if not (sep and at and colon):
        return url
    return f"{scheme}://{user}:***@{after}"
