"""The recommenders' state on every backend: what events add, bounded per item, and the
per-user part (the history it reads) erased with the user."""

from __future__ import annotations

import time

from slotwise.proxy.events.schema import Event, decode_event
from slotwise.proxy.recommend.config import RecsConfig
from slotwise.proxy.recommend.observe import RecsObserver
from slotwise.proxy.recommend.state import co_buy_key, co_view_key, trend_key
from slotwise.proxy.state import HistoryItem, Store, subject_key


def _event(kind: str, n: int, at: float, user: str | None, **properties: object) -> Event:
    import json

    body: dict[str, object] = {
        "type": kind,
        "id": f"e{n}-{at}",
        "time": at,
        "properties": properties,
    }
    if user:
        body["user_id"] = user
    event = decode_event(json.dumps(body).encode())
    assert not hasattr(event, "reason"), event
    return event  # type: ignore[return-value]


def _view(n: int, at: float, user: str | None, item: str) -> Event:
    return _event("product_view", n, at, user, product_id=item)


async def _top(store: Store, key: str) -> list[str]:
    return [m.decode() for m, _ in (await store.scores_top([key], 50))[0]]


async def test_views_count_for_trending_and_pair_within_a_session(store: Store) -> None:
    config = RecsConfig(co_view_span=2, session_gap=600.0)
    observer = RecsObserver(store, config)
    now = time.time()
    # the views from now - 20 to now share one trending bucket, whatever the clock says
    now -= max(0.0, 30.0 - now % config.trending_bucket)
    events = [
        _view(1, now - 4000, "u1", "old"),  # an earlier session: not paired
        _view(2, now - 20, "u1", "a"),
        _view(3, now - 10, "u1", "b"),
        _view(4, now - 5, "u1", "c"),
        _view(5, now - 1, None, "c"),  # contextual: counts for trending only
    ]
    await observer.observe(events, ["u1", "u1", "u1", "u1", None])
    bucket = int(now // config.trending_bucket)
    counts = dict((await store.scores_top([trend_key(bucket)], 10))[0])
    assert counts[b"c"] == 2.0 and counts[b"a"] == 1.0
    assert set(await _top(store, co_view_key("c"))) == {"a", "b"}
    assert "old" not in await _top(store, co_view_key("a"))
    # a later view pairs with what the user's stored history holds
    await store.history_append(
        subject_key("u2", "history"),
        [HistoryItem("product_view", now - 30, b'{"product_id":"x"}')],
        max_len=10,
    )
    await observer.observe([_view(6, now, "u2", "y")], ["u2"])
    assert await _top(store, co_view_key("y")) == ["x"]
    assert await _top(store, co_view_key("x")) == ["y"]


async def test_orders_pair_their_items_and_the_buyers_earlier_ones(store: Store) -> None:
    observer = RecsObserver(store, RecsConfig())
    now = time.time()
    order = _event(
        "purchase", 1, now, "buyer", order_id="o1", value=9.0, currency="EUR",
        items=[{"product_id": "mug"}, {"product_id": "tea"}],
    )  # fmt: skip
    await store.history_append(
        subject_key("buyer", "history"),
        [HistoryItem("purchase", now - 86400, b'{"items":[{"product_id":"pot"}]}')],
        max_len=10,
    )
    await observer.observe([order], ["buyer"])
    bought = (await store.scores_top([co_buy_key("mug")], 10))[0]
    assert [m for m, _ in bought] == [b"tea", b"pot"]  # the same order weighs more
    assert bought[0][1] == 2 * bought[1][1]


async def test_neighbours_are_bounded_per_item(store: Store) -> None:
    observer = RecsObserver(store, RecsConfig(neighbours=3))
    now = time.time()
    items = [{"product_id": f"i{n}"} for n in range(8)]
    order = _event("purchase", 1, now, "b", order_id="o", value=1.0, currency="EUR", items=items)
    await observer.observe([order], ["b"])
    assert len(await _top(store, co_buy_key("i0"))) == 3


async def test_the_per_user_state_goes_with_the_user(store: Store) -> None:
    await store.history_append(
        subject_key("gone", "history"),
        [HistoryItem("product_view", time.time(), b'{"product_id":"x"}')],
        max_len=10,
    )
    assert await store.erase_subject("gone") == 1
    assert await store.history(subject_key("gone", "history")) == []
