"""identify(): an anonymous id linked to a known one (an alias), so history follows the user;
events may carry either id; the alias is erased with the user."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from slotwise.plugins.gather import gather
from slotwise.plugins.profile_source import StoreProfileSource
from slotwise.plugins.provider import ProviderServices
from slotwise.proxy.events import history_key
from slotwise.proxy.events.aliases import alias_key, aliases_key
from slotwise.proxy.events.erasure import erased_key
from slotwise.proxy.state import subject_key
from slotwise.testing.provider import make_request, provider_set
from tests.proxy.events.conftest import ADMIN_TOKEN, Harness, settled

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _batch(*events: dict[str, Any]) -> dict[str, Any]:
    return {"consent": "personal", "events": list(events)}


async def test_identify_links_the_anonymous_history_to_the_known_user(harness: Harness) -> None:
    client, store = harness.client, harness.store
    anonymous = [
        {"type": "session_start", "id": "e1", "anonymous_id": "a1"},
        {"type": "product_view", "id": "e2", "anonymous_id": "a1",
         "properties": {"product_id": "sku-1"}},
    ]  # fmt: skip
    assert (await client.post("/_sw/events", json=_batch(*anonymous))).status_code == 200
    await settled(harness)
    assert await store.get(alias_key("a1")) is None
    both = {"type": "page_view", "id": "e3", "anonymous_id": "a1", "user_id": "user-42"}
    assert (await client.post("/_sw/events", json=_batch(both))).status_code == 200
    await settled(harness)
    assert await store.get(alias_key("a1")) == b"user-42"
    assert await store.set_members(aliases_key("user-42")) == frozenset({b"a1"})
    history = [item.event for item in await store.history(history_key("user-42"))]
    assert sorted(history) == ["page_view", "product_view", "session_start"]
    # a server-side event may carry either id: the anonymous one now counts for the user
    later = {"type": "add_to_cart", "id": "e4", "anonymous_id": "a1",
             "properties": {"product_id": "sku-1"}}  # fmt: skip
    server = {"type": "session_start", "id": "e5", "user_id": "user-42"}
    assert (await client.post("/_sw/events", json=_batch(later, server))).status_code == 200
    await settled(harness)
    history = [item.event for item in await store.history(history_key("user-42"))]
    assert history.count("add_to_cart") == 1 and history.count("session_start") == 2
    entries = await store.log_read("events")
    subjects = {msgspec.json.decode(e.data)["event"]["id"]: e.subject for e in entries}
    assert subjects == {"e1": "a1", "e2": "a1", "e3": "user-42", "e4": "user-42", "e5": "user-42"}
    # a repeat of the link copies nothing again
    again = {"type": "page_view", "id": "e6", "anonymous_id": "a1", "user_id": "user-42"}
    await client.post("/_sw/events", json=_batch(again))
    await settled(harness)
    history = [item.event for item in await store.history(history_key("user-42"))]
    assert history.count("product_view") == 1 and history.count("page_view") == 2


async def test_the_profile_read_of_an_anonymous_id_follows_its_alias(harness: Harness) -> None:
    client, store = harness.client, harness.store
    now = time.time()
    sessions = [{"type": "session_start", "id": f"s{i}", "anonymous_id": "a1"} for i in range(3)]
    await client.post("/_sw/events", json=_batch(*sessions))
    link = {"type": "page_view", "id": "p1", "anonymous_id": "a1", "user_id": "user-42"}
    await client.post("/_sw/events", json=_batch(link))
    await store.set(subject_key("user-42", "profile"), b'{"segments": ["vip"]}')
    await settled(harness)
    source = StoreProfileSource(store, subject_key, erased_key, alias_key)
    async with provider_set("consent", "profile", services=ProviderServices(profiles=source)) as p:
        got = await gather(
            p, make_request(cookies={"sw_consent": "yes"}, user_id="a1", received_at=now + 1)
        )
    assert got.user_id == "a1"  # the request's id stays what the cookie said
    assert got.signals["user.visits"] == 3 and got.signals["user.segments"] == ("vip",)
    assert got.history.count("page_view", now - 60) == 1


async def test_erasing_the_user_erases_its_aliases(harness: Harness) -> None:
    client, store = harness.client, harness.store
    await client.post("/_sw/events", json=_batch(
        {"type": "page_view", "id": "e1", "anonymous_id": "a1"},
        {"type": "page_view", "id": "e2", "anonymous_id": "a1", "user_id": "user-42"},
        {"type": "page_view", "id": "e3", "anonymous_id": "a2"},
    ))  # fmt: skip
    await settled(harness)
    assert await store.get(alias_key("a1")) == b"user-42"
    erased = await client.delete("/_sw/admin/users/user-42", headers=AUTH)
    assert erased.status_code == 200
    assert erased.json()["events"] == 2  # e1 under a1, e2 under user-42
    assert await store.get(alias_key("a1")) is None
    assert await store.history(history_key("a1")) == []
    assert await store.history(history_key("user-42")) == []
    assert [e.subject for e in await store.log_read("events")] == ["a2"]
    assert await store.get(erased_key("a1")) is not None
    late = await client.post(
        "/_sw/events", json=_batch({"type": "page_view", "id": "e4", "anonymous_id": "a1"})
    )
    assert late.json()["suppressed"] == 1


async def test_a_link_half_written_is_completed_and_found_by_the_erasure() -> None:
    """The link's two writes fail between them (the second times out under load): the next
    event with both ids completes it, and the user's alias set, which erasure reads, has the
    anonymous id throughout. (The benchmark's one unexplained residue on a single redis, the
    linked id never marked erased, is this with the writes the other way round.)"""
    from slotwise.proxy.events.aliases import link, linked
    from slotwise.proxy.state import StoreUnavailable, open_store

    class SecondWriteFails:
        def __init__(self, inner: Any) -> None:
            self.inner, self.writes = inner, 0

        def __getattr__(self, name: str) -> Any:
            call = getattr(self.inner, name)
            if name not in ("set", "set_add"):
                return call

            async def counted(*args: Any, **kwargs: Any) -> Any:
                self.writes += 1
                if self.writes == 2:
                    raise StoreUnavailable("injected: the second write timed out")
                return await call(*args, **kwargs)

            return counted

    async with open_store("memory://") as real:
        store = SecondWriteFails(real)
        keys = (history_key("a1"), history_key("u1"))
        try:
            await link(store, "a1", "u1", keys, max_len=50, ttl=60)  # type: ignore[arg-type]
        except StoreUnavailable:
            pass
        assert await linked(real, "u1") == ["a1"]  # what an erasure now would find
        assert await link(store, "a1", "u1", keys, max_len=50, ttl=60)  # type: ignore[arg-type]
        assert await real.get(alias_key("a1")) == b"u1"
        assert await linked(real, "u1") == ["a1"]
