"""Store URLs: the scheme table, options, and clear errors for wrong ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from slotwise.proxy.state import StoreConfigError, open_store, redact
from slotwise.proxy.state.memory import MemoryStore
from slotwise.proxy.state.redis import RedisStore
from slotwise.proxy.state.sqlite import SQLiteStore
from slotwise.proxy.state.urls import MAX_LOG_ENTRIES


def test_schemes() -> None:
    assert isinstance(open_store("memory://"), MemoryStore)
    sqlite = open_store("sqlite:///var/lib/slotwise/state.db?synchronous=normal&timeout=0.02")
    assert isinstance(sqlite, SQLiteStore)
    assert str(sqlite.path) == "/var/lib/slotwise/state.db"
    assert str(open_store("sqlite://var/state.db").path) == "var/state.db"  # type: ignore[attr-defined]
    single = open_store("redis://127.0.0.1:6390/2?timeout=0.03")
    assert isinstance(single, RedisStore) and single.scheme == "redis"
    cluster = open_store("redis+cluster://10.0.0.1:7000,10.0.0.2:7000")
    assert isinstance(cluster, RedisStore) and cluster.scheme == "redis+cluster"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgres://x", "must start with memory://, sqlite://"),
        ("state.db", "must start with"),
        ("sqlite://", "has no file path"),
        ("sqlite:///x.db?synchronus=full", "unknown option 'synchronus'"),
        ("sqlite:///x.db?synchronous=off", "is not one of: full, normal"),
        ("sqlite:///x.db?timeout=abc", "timeout must be seconds"),
        ("redis://127.0.0.1:99999", "port '99999' of '127.0.0.1:99999' is not a number"),
        ("redis://a:1,b:2", "use redis+cluster://"),
        ("redis://127.0.0.1:6379/x", "is not a number"),
        ("redis+cluster://a:1/3", "only database 0"),
        ("memory://somewhere", "takes no host or path"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(StoreConfigError, match=message.replace("+", r"\+").replace("(", r"\(")):
        open_store(url)


def test_redact_hides_the_password() -> None:
    assert redact("redis://user:secret@h:1/0") == "redis://user:***@h:1/0"
    with pytest.raises(StoreConfigError) as info:
        open_store("redis://user:secret@h:1/0?nope=1")
    assert "secret" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "secret_parts"),
    [
        ("redis://:s/cret@localhost:6379", ["s/cret", "cret"]),
        ("redis://:p@ss:w/rd#?%x@h:6379", ["p@ss", "w/rd", "%x", "ss:w"]),
        ("redis://:s#cret@127.0.0.1:1", ["s#cret", "cret"]),
        ("redis://:s?cret@localhost:6379", ["s?cret", "cret"]),
        ("redis+cluster://u:pw/x@h1:1,h2:2", ["pw/x", "pw"]),
    ],
)
def test_unencoded_special_characters_in_the_password_never_leak(
    url: str, secret_parts: list[str]
) -> None:
    with pytest.raises(StoreConfigError, match="%-encode special characters") as info:
        open_store(url)
    for part in secret_parts:
        assert part not in str(info.value)
        assert part not in redact(url)


def test_encoded_special_characters_in_the_password_work() -> None:
    store = open_store("redis://us%40er:p%40ss%3Aw%2Frd%23%3F%25x@h:6390/1")
    assert isinstance(store, RedisStore)
    assert store._auth == {"username": "us@er", "password": "p@ss:w/rd#?%x"}
    assert store._nodes == [("h", 6390)] and store._db == 1
    # an "@" or ":" in the password is unambiguous: the host starts after the last "@"
    assert open_store("redis://:p@ss:x@h:1")._auth["password"] == "p@ss:x"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "url",
    ["redis://:6379", "redis+cluster://:7000", "redis://:secret@:6379", "redis+cluster://a:1,:2"],
)
def test_a_missing_host_is_refused(url: str) -> None:
    with pytest.raises(StoreConfigError, match="no host") as info:
        open_store(url)
    assert "secret" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "nodes"),
    [
        ("redis://[::1]:6390/0", [("::1", 6390)]),
        ("redis://[::1]", [("::1", 6379)]),
        ("redis://[fe80::1%25eth0]:1", [("fe80::1%eth0", 1)]),  # RFC 6874 zone id
        ("redis+cluster://[::1]:7000,[::2]:7001", [("::1", 7000), ("::2", 7001)]),
        ("redis://localhost", [("localhost", 6379)]),
    ],
)
def test_hosts_and_bracketed_ipv6(url: str, nodes: list[tuple[str, int]]) -> None:
    store = open_store(url)
    assert isinstance(store, RedisStore) and store._nodes == nodes


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://::1:6379", "write an IPv6 address in brackets"),
        ("redis://[::1:6379", "is not \\[IPv6 address\\]:port"),
        ("redis://[::1]x", "is not \\[IPv6 address\\]:port"),
        ("redis://[::1]:0", "not a number from 1 to 65535"),
        ("redis://h:٣", "not a number from 1 to 65535"),
        ("redis://h:1/٣", "the /N part"),
        ("redis://h:1/0#x", "unexpected '#"),
    ],
)
def test_bad_hosts_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(StoreConfigError, match=message):
        open_store(url)


@pytest.mark.parametrize(
    "url",
    [
        "redis://h:1?timeout=0.01&timeout=5",
        "sqlite:///x.db?synchronous=full&synchronous=normal",
        "memory://?max_log_entries=10&max_log_entries=20",
    ],
)
def test_a_repeated_option_is_refused(url: str) -> None:
    with pytest.raises(StoreConfigError, match="is given more than once"):
        open_store(url)


@pytest.mark.parametrize(
    "value", ["٣", "³", "99999999999999999999999", str(MAX_LOG_ENTRIES + 1), "0", "1e3", "+5"]
)
def test_max_log_entries_is_ascii_digits_within_a_bound(value: str) -> None:
    with pytest.raises(StoreConfigError, match="max_log_entries must be a whole number"):
        open_store(f"memory://?max_log_entries={value}")


def test_max_log_entries_bound_is_allowed() -> None:
    store = open_store(f"memory://?max_log_entries={MAX_LOG_ENTRIES}")
    assert isinstance(store, MemoryStore) and store.max_log_entries == MAX_LOG_ENTRIES


@pytest.mark.parametrize("value", ["٣", "1_0", " 5", "0x1", "nan", "inf"])
def test_seconds_are_plain_ascii_decimals(value: str) -> None:
    with pytest.raises(StoreConfigError, match="timeout must be seconds"):
        open_store(f"redis://h:1?timeout={value}")


def test_seconds_accept_decimals_and_exponents() -> None:
    store = open_store("redis://h:1?timeout=.5&write_timeout=2e1")
    assert isinstance(store, RedisStore)
    assert (store._timeout, store._write_timeout) == (0.5, 20.0)


def test_sqlite_tilde_is_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    store = open_store("sqlite://~/state.db")
    assert isinstance(store, SQLiteStore) and store.path == tmp_path / "state.db"
    # an absolute path that happens to start with /~ is taken as written
    assert str(open_store("sqlite:///~/state.db").path) == "/~/state.db"  # type: ignore[attr-defined]


def test_sqlite_path_with_nul_is_refused() -> None:
    with pytest.raises(StoreConfigError, match="NUL character"):
        open_store("sqlite:///tmp/x%00.db")
