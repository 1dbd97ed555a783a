"""Store URLs: the scheme table, options, and clear errors for wrong ones."""

from __future__ import annotations

import pytest

from slotwise.proxy.state import StoreConfigError, open_store, redact
from slotwise.proxy.state.memory import MemoryStore
from slotwise.proxy.state.redis import RedisStore
from slotwise.proxy.state.sqlite import SQLiteStore


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
        ("redis://127.0.0.1:99999", "is not host:port"),
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
