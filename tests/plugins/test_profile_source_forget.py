"""An erasure takes the user's id out of the profile source's key cache."""

from __future__ import annotations

from slotwise.plugins.profile_source import StoreProfileSource
from slotwise.proxy.events.erasure import erased_key
from slotwise.proxy.state import open_store, subject_key


async def test_forget_drops_the_erased_users_cached_keys() -> None:
    async with open_store("memory://") as store:
        source = StoreProfileSource(store, subject_key, erased_key)
        await source.records("u1")
        await source.records("u2")
        await source.events("u1", 0.0)
        source.read_now("u2", 1.0, 0.0)
        # each user's fixed keys and history key, cached together
        assert {user: keys[1] for user, keys in source._fixed.items()} == {
            "u1": subject_key("u1", "history"),
            "u2": subject_key("u2", "history"),
        }
        assert await source.forget(frozenset({"u1"})) == 0
        assert "u1" not in source._fixed and "u2" in source._fixed
