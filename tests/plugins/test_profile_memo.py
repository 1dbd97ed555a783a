"""The profile provider's per-user memo and gather's reuse of validated results.

A user's signals are derived once per change of their records (profile, cart, caps reached,
events in the window) and reused while the store answers with equal records; gather validates
a result object it saw before once (``Provider.reuses_results``). Neither may change what a
request sees: every change of a record shows on the next request, and an erasure empties both.
"""

from __future__ import annotations

import msgspec

from slotwise.plugins.builtin.profile import ProfileProvider
from slotwise.plugins.gather import gather
from slotwise.plugins.profile_source import Cart, Profile, StoreProfileSource
from slotwise.plugins.provider import ProviderServices
from slotwise.proxy.erased_request import empty_personal_caches
from slotwise.proxy.state import HistoryItem, open_store, subject_key
from slotwise.testing.provider import make_request, provider_set

NOW = 1_800_000_000.0


def _request(user: str, at: float = NOW) -> object:
    return make_request(cookies={"sw_consent": "yes"}, user_id=user, received_at=at)


def _personal(signals: object) -> dict[str, object]:
    return {k: v for k, v in signals.items() if k.startswith(("user.", "cart."))}  # type: ignore[attr-defined]


async def test_equal_records_give_the_same_answer_and_every_change_shows() -> None:
    async with open_store("memory://") as store:
        await store.set(subject_key("u1", "profile"), msgspec.json.encode(Profile(age=31)))
        await store.history_append(
            subject_key("u1", "history"),
            [HistoryItem("add_to_cart", NOW - 60, b'{"product_id": "a", "price": 2.0}')],
            max_len=10,
        )
        services = ProviderServices(profiles=StoreProfileSource(store, subject_key))
        async with provider_set("consent", "profile", services=services) as providers:
            provider = providers.by_name["profile"].provider
            assert isinstance(provider, ProfileProvider)
            first = await gather(providers, _request("u1"))  # type: ignore[arg-type]
            again = await gather(providers, _request("u1"))  # type: ignore[arg-type]
            # the same answer object from the provider, validated once by gather
            assert again.history is first.history
            assert _personal(again.signals) == _personal(first.signals)
            assert first.signals["cart.items"] == ("a",) and first.signals["user.age"] == 31

            # each record changing shows on the next request
            await store.set(subject_key("u1", "profile"), msgspec.json.encode(Profile(age=32)))
            assert (await gather(providers, _request("u1"))).signals["user.age"] == 32  # type: ignore[arg-type]
            await store.set(
                subject_key("u1", "cart"), msgspec.json.encode(Cart(value=5.0, items=("b",)))
            )
            assert (await gather(providers, _request("u1"))).signals["cart.items"] == ("b",)  # type: ignore[arg-type]
            await store.history_append(
                subject_key("u1", "history"),
                [HistoryItem("session_start", NOW - 30), HistoryItem("session_start", NOW - 20)],
                max_len=10,
            )
            later = await gather(providers, _request("u1"))  # type: ignore[arg-type]
            assert later.signals["user.visits"] == 2 and later.signals["user.is_new"] is False
            assert later.history.count("session_start", NOW - 60) == 2

            # an event leaving the window (30 days) changes the events read: so the answer
            month_on = NOW + 30 * 86_400.0 - 25
            moved = await gather(providers, _request("u1", month_on))  # type: ignore[arg-type]
            assert moved.signals["user.visits"] == 1
            assert moved.history.count("add_to_cart", 0.0) == 0


async def test_reused_results_count_their_dropped_values_every_time() -> None:
    """A memoised answer with a value out of its declared range: dropped, and counted as
    invalid on each request, as when it was validated every time."""
    async with open_store("memory://") as store:
        await store.set(subject_key("u1", "profile"), msgspec.json.encode(Profile(age=200)))
        services = ProviderServices(profiles=StoreProfileSource(store, subject_key))
        async with provider_set("consent", "profile", services=services) as providers:
            loaded = providers.by_name["profile"]
            for _ in range(3):
                got = await gather(providers, _request("u1"))  # type: ignore[arg-type]
                assert "user.age" not in got.signals and got.signals["user.visits"] == 0
            assert loaded.metrics.misses["invalid"] == 3
            assert loaded.metrics.invalid_values == 3


async def test_an_erasure_empties_the_memos() -> None:
    async with open_store("memory://") as store:
        await store.set(subject_key("u1", "profile"), msgspec.json.encode(Profile(age=31)))
        source = StoreProfileSource(store, subject_key)
        services = ProviderServices(profiles=source)
        async with provider_set("consent", "profile", services=services) as providers:
            loaded = providers.by_name["profile"]
            provider = loaded.provider
            assert isinstance(provider, ProfileProvider)
            await gather(providers, _request("u1"))  # type: ignore[arg-type]
            assert provider._derived and loaded.validated and source._profiles
            # what the worker answering an erasure does (and watch_erasures, with TTL caches)
            empty_personal_caches(providers)
            assert not provider._derived and not loaded.validated and not source._profiles
            # the worker answering the erasure: its holders (the source's forget) too
            await gather(providers, _request("u1"))  # type: ignore[arg-type]
            await source.forget(frozenset({"u1"}))
            assert not source._profiles and "u1" not in source._fixed


async def test_a_source_that_changes_the_list_it_returned_is_not_trusted() -> None:
    """The memo keeps its own copy of the events: a source handing out a list it later
    appends to does not make an old answer look current."""
    from slotwise.plugins.profile_source import Event

    events: list[Event] = [Event("add_to_cart", NOW - 60)]

    class LiveListSource:
        answers_at_once = True

        async def records(self, user_id: str) -> tuple[Profile | None, Cart | None]:
            return None, None

        async def events(self, user_id: str, since: float) -> list[Event]:
            return events  # the same list every time, changed in place

    services = ProviderServices(profiles=LiveListSource())  # type: ignore[arg-type]
    async with provider_set("consent", "profile", services=services) as providers:
        first = await gather(providers, _request("u1"))  # type: ignore[arg-type]
        events.append(Event("add_to_cart", NOW - 30))
        second = await gather(providers, _request("u1"))  # type: ignore[arg-type]
    assert first.history.count("add_to_cart", 0.0) == 1
    assert second.history.count("add_to_cart", 0.0) == 2


async def test_a_read_that_finds_the_erasure_marker_drops_the_users_entry() -> None:
    """On a worker that did not answer the erasure: the user's next read says erased, and
    their derived signals leave the memo then."""
    from slotwise.proxy.events.erasure import erased_key

    async with open_store("memory://") as store:
        await store.set(subject_key("u1", "profile"), msgspec.json.encode(Profile(age=31)))
        source = StoreProfileSource(store, subject_key, erased_key)
        services = ProviderServices(profiles=source)
        async with provider_set("consent", "profile", services=services) as providers:
            provider = providers.by_name["profile"].provider
            assert isinstance(provider, ProfileProvider)
            await gather(providers, _request("u1"))  # type: ignore[arg-type]
            assert "u1" in provider._derived
            await store.set(erased_key("u1"), b"1")
            got = await gather(providers, _request("u1"))  # type: ignore[arg-type]
            assert got.signals["user.erased"] is True and "user.age" not in got.signals
            assert "u1" not in provider._derived
