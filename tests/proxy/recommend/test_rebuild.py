"""`slotwise recs rebuild` learns from a store's events log what the collector would have
learned live: the same trending counts, co-views and co-purchases."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from slotwise.proxy.cli import main
from slotwise.proxy.events import EventCollector
from slotwise.proxy.events.schema import Event, decode_event
from slotwise.proxy.recommend.observe import RecsObserver
from slotwise.proxy.recommend.state import co_buy_key, co_view_key, trend_key
from slotwise.proxy.state import Store, open_store

NOW = time.time() - 600


def _events() -> list[Event]:
    now = NOW
    raw = []
    for n, (user, item) in enumerate(
        [("u1", "a"), ("u1", "b"), ("u1", "c"), ("u2", "b"), ("u2", "c"), ("u3", "a")]
    ):
        raw.append({"type": "product_view", "id": f"v{n}", "time": now + n, "user_id": user,
                    "properties": {"product_id": item}})  # fmt: skip
    raw.append({"type": "purchase", "id": "p1", "time": now + 10, "user_id": "u2",
                "properties": {"order_id": "o1", "value": 3.0, "currency": "EUR",
                               "items": [{"product_id": "b"}, {"product_id": "d"}]}})  # fmt: skip
    events = [decode_event(json.dumps(r).encode()) for r in raw]
    return [e for e in events if isinstance(e, Event.__args__)]  # type: ignore[attr-defined]


async def _collect(store: Store, learn_live: bool) -> None:
    async with EventCollector(store) as collector:
        if learn_live:
            collector.recs = RecsObserver(store)
        for event in _events():  # one at a time, each learned before the next comes
            await collector.collect([event], consent="personal")
            while collector._background:
                await asyncio.sleep(0.005)


async def _state(store: Store) -> list[list[tuple[bytes, float]]]:
    bucket = int(NOW // 3600)
    keys = [trend_key(bucket), trend_key(bucket + 1), co_view_key("b"), co_view_key("c"),
            co_buy_key("b"), co_buy_key("d")]  # fmt: skip
    return [[(m, round(s, 6)) for m, s in top] for top in await store.scores_top(keys, 20)]


async def test_rebuild_learns_what_the_collector_learns_live(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live_url, later_url = f"sqlite://{tmp_path}/live.db", f"sqlite://{tmp_path}/later.db"
    async with open_store(live_url) as live:
        await _collect(live, learn_live=True)
        expected = await _state(live)
    async with open_store(later_url) as later:
        await _collect(later, learn_live=False)
        assert all(not top for top in await _state(later))
    assert await asyncio.to_thread(main, ["recs", "rebuild", "--store", later_url]) == 0
    assert "7 events read, 7 learned from" in capsys.readouterr().out
    async with open_store(later_url) as later:
        assert await _state(later) == expected
    assert expected[2] and expected[4]  # co-views of b, co-purchases of b
