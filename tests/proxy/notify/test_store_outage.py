"""The store goes away while the sender works (redis-server stopped, then started again on its
append-only file): the sender waits it out and every notification still arrives once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from slotwise.proxy.notify.runtime import build_sender
from slotwise.proxy.state import open_store
from tests.proxy.notify.helpers import SECRET_VAR, note, put, run_until, settings
from tests.support.notify import webhook_receiver
from tests.support.servers import redis_server

pytestmark = [pytest.mark.redis, pytest.mark.slow]
AOF = ("--appendonly", "yes", "--appendfsync", "always")


async def test_a_store_outage_delays_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with webhook_receiver() as rx:
        monkeypatch.setenv(SECRET_VAR, rx.secret)
        with redis_server(tmp_path / "redis", *AOF) as redis:
            port, url = redis.port, redis.url
            async with open_store(url) as store:
                now = time.time()
                notes = [note(f"u{i}", due=now + i * 0.1, episode=now) for i in range(30)]
                await put(store, *notes)
                sender = build_sender(settings(rx.url), store)
                task = asyncio.create_task(
                    run_until(sender, lambda: len(rx.accepted) == 30, timeout=60)
                )
                while len(rx.accepted) < 5:
                    await asyncio.sleep(0.02)
                redis.stop()  # mid-run: some sent, most still due
                outage = len(rx.accepted)
                await asyncio.sleep(1.5)
                with redis_server(tmp_path / "redis", *AOF, port=port):
                    await task
        assert outage < 30
        assert set(rx.accepted) == {n.key for n in notes}
