"""The sender's rules: quiet hours in the user's time zone delay and never drop, erasure takes
pending notifications with it, the trigger's hook cancels, dead letters can be listed and
replayed (``slotwise notify``), and one sender works at a time (the lease)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from slotwise.proxy.cli import main
from slotwise.proxy.events.collector import EventCollector
from slotwise.proxy.notify.lease import Lease
from slotwise.proxy.notify.outbox import OUTBOX_LOG, Notification
from slotwise.proxy.notify.quiet import quiet_until
from slotwise.proxy.notify.runtime import build_sender
from slotwise.proxy.notify.schedule import dead_letters, load_state
from slotwise.proxy.state import open_store
from tests.proxy.notify.helpers import SECRET_VAR, note, put, run_until, settings
from tests.support.notify import webhook_receiver

TOKYO = ZoneInfo("Asia/Tokyo")


def at(day: int, hour: int, minute: int = 0, tz: dt.tzinfo = TOKYO) -> float:
    return dt.datetime(2026, 3, day, hour, minute, tzinfo=tz).timestamp()


def test_quiet_hours_are_read_in_the_users_time_zone() -> None:
    night = (22 * 60, 8 * 60)  # 22:00..08:00, across midnight
    assert quiet_until(at(5, 23), *night, "Asia/Tokyo") == at(6, 8)
    assert quiet_until(at(6, 3), *night, "Asia/Tokyo") == at(6, 8)
    assert quiet_until(at(6, 12), *night, "Asia/Tokyo") == at(6, 12)
    assert quiet_until(at(6, 8), *night, "Asia/Tokyo") == at(6, 8)  # the end is not quiet
    lunch = (12 * 60, 13 * 60 + 30)
    assert quiet_until(at(6, 12, 10), *lunch, "Asia/Tokyo") == at(6, 13, 30)
    # no zone, or one that is not a zone name: UTC
    utc_23 = at(5, 23, tz=dt.UTC)
    assert quiet_until(utc_23, *night, None) == at(6, 8, tz=dt.UTC)
    assert quiet_until(utc_23, *night, "Mars/Olympus") == at(6, 8, tz=dt.UTC)
    assert quiet_until(utc_23, None, None, "Asia/Tokyo") == utc_23


async def test_quiet_hours_delay_the_send_to_their_end(monkeypatch: pytest.MonkeyPatch) -> None:
    offset = [0.0]

    def clock() -> float:
        return time.time() + offset[0]

    # the sender's clock reads 23:00 in Tokyo; the notification is due then
    offset[0] = at(5, 23) - time.time()
    with webhook_receiver() as rx:
        monkeypatch.setenv(SECRET_VAR, rx.secret)
        async with open_store("memory://") as store:
            sender = build_sender(settings(rx.url), store)
            sender.clock = sender.lease.clock = clock
            n = note(
                "u1", due=clock(), quiet_start=22 * 60, quiet_end=8 * 60, time_zone="Asia/Tokyo"
            )
            await put(store, n)
            await run_until(sender, lambda: sender.counts.get("delayed_quiet") == 1)
            await run_until(sender, lambda: True)
            assert rx.attempts == {}  # not sent in the night
            state = await load_state(store, "u1", n.key)
            assert state is not None and state.status == "pending" and state.next_at == at(6, 8)
            offset[0] = at(6, 8, 0) + 1 - time.time()  # the morning
            await run_until(sender, lambda: len(rx.accepted) == 1)


async def test_erasure_removes_pending_notifications(monkeypatch: pytest.MonkeyPatch) -> None:
    offset = [0.0]
    with webhook_receiver() as rx:
        monkeypatch.setenv(SECRET_VAR, rx.secret)
        async with open_store("memory://") as store:
            collector = EventCollector(store)
            sender = build_sender(settings(rx.url), store)
            sender.clock = sender.lease.clock = lambda: time.time() + offset[0]
            later = time.time() + 3600
            # u1: scheduled by the sender, then erased; u2: erased while still in the outbox
            await put(store, note("u1", due=later), note("u3", due=later))
            await run_until(sender, lambda: len(sender.schedule) == 2)
            await put(store, note("u2", due=later))
            await collector.erase("u1", actor="test")
            await collector.erase("u2", actor="test")
            assert [e.subject for e in await store.log_read(OUTBOX_LOG)] == ["u3"]
            offset[0] = 3601
            await run_until(sender, lambda: len(rx.accepted) == 1)
            await asyncio.sleep(0.2)
            assert [d.body["data"]["user_id"] for d in rx.accepted.values()] == ["u3"]
            assert sum(rx.attempts.values()) == 1
            assert await load_state(store, "u1", note("u1").key) is None


async def test_a_notification_the_trigger_cancelled_is_not_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def still_due(n: Notification) -> bool:
        return n.subject != "u2"  # u2 purchased within the `unless` window

    with webhook_receiver() as rx:
        monkeypatch.setenv(SECRET_VAR, rx.secret)
        async with open_store("memory://") as store:
            sender = build_sender(settings(rx.url), store, still_due=still_due)
            u2 = note("u2")
            await put(store, note("u1"), u2)
            await run_until(sender, lambda: sender.counts.get("cancelled") == 1 and rx.accepted)
            state = await load_state(store, "u2", u2.key)
            assert state is not None and state.status == "cancelled"
            assert [d.body["data"]["user_id"] for d in rx.accepted.values()] == ["u1"]


async def test_dead_letters_are_listed_and_replayed_by_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    gone = {"on": True}
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with webhook_receiver(fault=lambda msg_id, attempt: 410 if gone["on"] else "ok") as rx:
        monkeypatch.setenv(SECRET_VAR, rx.secret)
        async with open_store(url) as store:
            sender = build_sender(settings(rx.url), store)
            u1, u2 = note("u1"), note("u2")
            await put(store, u1, u2)
            await run_until(sender, lambda: sender.counts.get("dead_lettered") == 2)
            capsys.readouterr()
            argv = ["notify", "dead-letters", "--store", url, "--format", "json"]
            assert await asyncio.to_thread(main, argv) == 0
            rows = json.loads(capsys.readouterr().out)
            assert sorted((r["key"], r["reason"], r["attempts"]) for r in rows) == [
                (u1.key, "gone: the endpoint answered 410", 1),
                (u2.key, "gone: the endpoint answered 410", 1),
            ]
            gone["on"] = False  # the receiver is back
            argv = ["notify", "replay", u1.key, "--store", url]
            assert await asyncio.to_thread(main, argv) == 0
            await run_until(sender, lambda: len(rx.accepted) == 1)
            assert [x.key for x in await dead_letters(store)] == [u2.key]
            assert await asyncio.to_thread(main, argv) == 2  # no longer a dead letter
            assert "unknown_dead_letter" in capsys.readouterr().err
            argv = ["notify", "replay", "--all", "--store", url]
            assert await asyncio.to_thread(main, argv) == 0
            await run_until(sender, lambda: len(rx.accepted) == 2)
            assert await dead_letters(store) == []
            state = await load_state(store, "u2", u2.key)
            assert state is not None and (state.status, state.generation) == ("sent", 1)


async def test_one_lease_holder_and_a_takeover_after_it_stops() -> None:
    async with open_store("memory://") as store:
        # windows long enough that a stalled machine does not skip one between two calls
        a, b = Lease(store, 0.5, owner="a"), Lease(store, 0.5, owner="b")
        assert await a.hold() and not await b.hold()
        for _ in range(10):  # renewal: a keeps it window after window
            await asyncio.sleep(0.1)
            assert await a.hold() and not await b.hold()
        clock, at = a.clock, a.clock()
        a.clock = lambda: at  # the same instant for the claim and the check
        assert await a.hold() and a.valid_for() > 0.5  # the next window is claimed ahead
        a.clock = clock
        # a dies without releasing: b takes over within two windows
        deadline = time.monotonic() + 5
        while not await b.hold():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        assert not await a.hold()
        await b.release()
        assert await a.hold()  # released: taken at once


async def test_an_outbox_record_that_does_not_decode_is_a_listed_dead_letter(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from slotwise.proxy.state import LogRecord

    url = f"sqlite:///{tmp_path / 'state.db'}"
    async with open_store(url) as store:
        sender = build_sender(settings(), store)
        await store.log_append(OUTBOX_LOG, [LogRecord(b'{"key": 1}', subject="u9")])
        await run_until(sender, lambda: sender.counts.get("dead_lettered") == 1)
        [letter] = await dead_letters(store)
        assert letter.key.startswith("outbox:") and letter.reason.startswith("malformed")
        assert letter.subject == "u9" and letter.notification is None
        capsys.readouterr()
        assert await asyncio.to_thread(main, ["notify", "dead-letters", "--store", url]) == 0
        [line] = capsys.readouterr().out.splitlines()
        assert f"{letter.key}  -  attempts=0  malformed: the outbox record" in line
        argv = ["notify", "replay", letter.key, "--store", url]
        assert await asyncio.to_thread(main, argv) == 2
        assert "cannot be sent" in capsys.readouterr().err


async def test_a_backlog_is_taken_in_batches_without_losing_the_lease() -> None:
    async with open_store("memory://") as store:
        sender = build_sender(settings(), store)
        later = time.time() + 3600
        await put(store, *(note(f"u{i}", due=later, episode=1.0) for i in range(1200)))
        rounds = 0
        step = sender.step

        async def counted() -> float:
            nonlocal rounds
            rounds += 1
            return await step()

        sender.step = counted  # type: ignore[method-assign]
        await run_until(sender, lambda: len(sender.schedule) == 1200)
        assert rounds >= 3  # 500 records a round
