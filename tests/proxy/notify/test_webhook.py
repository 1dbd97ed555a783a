"""Webhook delivery through a real local receiver: signed as the Standard Webhooks
specification says (the receiver verifies on its own), retried on 500, timeouts and dropped
connections with the same webhook-id, a dead letter on 410 or after the last attempt."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from slotwise.proxy.notify import signing
from slotwise.proxy.notify.runtime import build_sender
from slotwise.proxy.notify.schedule import dead_letters, load_state
from slotwise.proxy.notify.sender import RetryPolicy
from slotwise.proxy.state import open_store
from tests.proxy.notify.helpers import SECRET_VAR, note, put, run_until, settings
from tests.support.notify import new_secret, receiver_verifies, webhook_receiver

VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_the_specifications_test_vector() -> None:
    key = signing.secret_key(VECTOR_SECRET)
    body = b'{"test": 2432232314}'
    header = signing.sign([key], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert header == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    headers = signing.headers([key], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert receiver_verifies(VECTOR_SECRET, headers, body, now=1614265330 + 10)
    assert not receiver_verifies(VECTOR_SECRET, headers, body + b" ", now=1614265330)
    assert not receiver_verifies(VECTOR_SECRET, headers, body, now=1614265330 + 301)


def test_rotation_signs_with_every_secret_and_either_verifies() -> None:
    old, new = new_secret(), new_secret()
    keys = [signing.secret_key(new), signing.secret_key(old)]
    headers = signing.headers(keys, "k1", 1000, b"{}")
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert receiver_verifies(old, headers, b"{}", now=1000)
    assert receiver_verifies(new, headers, b"{}", now=1000)
    assert not receiver_verifies(new_secret(), headers, b"{}", now=1000)


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with whsec_"),
        ("whsec_not base64!", "not base64"),
        ("whsec_c2hvcnQ=", "5 bytes"),
    ],
)
def test_bad_secrets_are_named(secret: str, message: str) -> None:
    with pytest.raises(signing.NotifyError, match=message) as caught:
        signing.secret_key(secret)
    assert caught.value.code == "bad_secret"


async def test_a_due_notification_arrives_signed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    with webhook_receiver() as receiver:
        monkeypatch.setenv(SECRET_VAR, receiver.secret)
        async with open_store("memory://") as store:
            sender = build_sender(settings(receiver.url), store)
            later = note("u2", due=time.time() + 0.6, episode=2.0)
            await put(store, note("u1", traits={"name": "Ada"}, episode=1.0), later)
            await run_until(sender, lambda: len(receiver.accepted) == 2)
            first = receiver.accepted[note("u1", episode=1.0).key]
            assert first.body["type"] == "slotwise.notification"
            assert first.body["data"]["traits"] == {"name": "Ada"}
            assert first.body["data"]["offer"]["id"] == "d.discount_10"
            assert receiver.accepted[later.key].at >= later.due  # not before it is due
            assert receiver.rejected == receiver.duplicates == 0
            state = await load_state(store, "u1", first.id)
            assert state is not None and state.status == "sent" and state.attempts == 1
            # the outbox hands the same key again (after a crash): nothing is sent twice
            await put(store, note("u1", episode=1.0))
            await run_until(sender, lambda: True)
            await asyncio.sleep(0.2)
            assert sum(receiver.attempts.values()) == 2


@pytest.mark.parametrize("fault", [500, "timeout", "drop", 429])
async def test_failures_are_retried_with_the_same_id(
    fault: str | int, monkeypatch: pytest.MonkeyPatch
) -> None:
    with webhook_receiver(fault=lambda msg_id, attempt: fault if attempt <= 2 else "ok") as rx:
        monkeypatch.setenv(SECRET_VAR, rx.secret)
        async with open_store("memory://") as store:
            # only the timed-out attempts may take the timeout: a loaded machine answers late
            timeout = 1.0 if fault == "timeout" else 5.0
            sender = build_sender(settings(rx.url, timeout=timeout), store)
            n = note("u1")
            await put(store, n)
            await run_until(sender, lambda: len(rx.accepted) == 1)
            assert rx.attempts == {n.key: 3}
            assert sender.counts == {"retried": 2, "sent": 1}
            state = await load_state(store, "u1", n.key)
            assert state is not None and state.status == "sent" and state.attempts == 3


async def test_410_is_a_dead_letter_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    with webhook_receiver(fault=lambda msg_id, attempt: 410) as rx:
        monkeypatch.setenv(SECRET_VAR, rx.secret)
        async with open_store("memory://") as store:
            sender = build_sender(settings(rx.url), store)
            await put(store, note("u1"))
            await run_until(sender, lambda: sender.counts.get("dead_lettered") == 1)
            [letter] = await dead_letters(store)
            assert letter.reason.startswith("gone") and letter.attempts == 1
            assert sum(rx.attempts.values()) == 1


async def test_attempts_run_out_into_a_dead_letter(monkeypatch: pytest.MonkeyPatch) -> None:
    with webhook_receiver(fault=lambda msg_id, attempt: 503) as rx:
        monkeypatch.setenv(SECRET_VAR, rx.secret)
        async with open_store("memory://") as store:
            sender = build_sender(settings(rx.url, max_attempts=3), store)
            await put(store, note("u1"))
            await run_until(sender, lambda: sender.counts.get("dead_lettered") == 1)
            [letter] = await dead_letters(store)
            assert (letter.reason, letter.attempts) == ("http_503", 3)
            assert sum(rx.attempts.values()) == 3


def test_backoff_grows_with_jitter_and_respects_retry_after() -> None:
    policy = RetryPolicy(max_attempts=8, base=1.0, cap=10.0)
    assert [policy.delay(n, None, lambda: 1.0) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 8, 10]
    assert [policy.delay(n, None, lambda: 0.0) for n in (1, 2, 3)] == [0.5, 1, 2]
    assert policy.delay(1, 7.0, lambda: 0.0) == 7.0
    assert policy.delay(1, 700.0, lambda: 0.0) == 10.0


async def test_retry_state_survives_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sender stopped between attempts: the next one resumes the count from the store."""
    with webhook_receiver(fault=lambda msg_id, attempt: 500 if attempt <= 2 else "ok") as rx:
        monkeypatch.setenv(SECRET_VAR, rx.secret)
        url = f"sqlite:///{tmp_path / 'state.db'}"
        n = note("u1")
        async with open_store(url) as store:
            sender = build_sender(settings(rx.url, retry_base=0.3, retry_max=0.3), store)
            await put(store, n)
            await run_until(sender, lambda: sender.counts.get("retried") == 1)
        async with open_store(url) as store:
            state = await load_state(store, "u1", n.key)
            assert state is not None and state.attempts == 1 and state.reason == "http_500"
            sender = build_sender(settings(rx.url), store)
            await run_until(sender, lambda: len(rx.accepted) == 1)
            state = await load_state(store, "u1", n.key)
            assert state is not None and (state.status, state.attempts) == ("sent", 3)


async def test_a_slow_endpoint_holds_up_neither_other_sends_nor_the_lease(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slow = note("u1", episode=1.0)
    with webhook_receiver(
        fault=lambda msg_id, attempt: "timeout" if msg_id == slow.key else "ok"
    ) as rx:
        monkeypatch.setenv(SECRET_VAR, rx.secret)
        async with open_store("memory://") as store:
            sender = build_sender(settings(rx.url, timeout=3.0, lease_seconds=0.5), store)
            await put(store, slow)
            await run_until(sender, lambda: rx.attempts.get(slow.key) == 1)
            fast = note("u2", episode=2.0)
            await put(store, fast)
            started = time.monotonic()
            stop = asyncio.Event()
            task = asyncio.create_task(sender.run(stop))
            try:
                while fast.key not in rx.accepted:
                    assert time.monotonic() - started < 2.5, "waited for the slow endpoint"
                    await asyncio.sleep(0.02)
                for _ in range(20):  # the lease is renewed while the slow attempt runs
                    assert sender.active
                    await asyncio.sleep(0.1)
            finally:
                stop.set()
                await asyncio.wait_for(task, timeout=10)


async def test_metrics_count_across_senders_and_show_the_lag(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from slotwise.proxy.notify import stats

    with webhook_receiver(fault=lambda msg_id, attempt: "timeout") as rx:
        monkeypatch.setenv(SECRET_VAR, rx.secret)
        async with open_store("memory://") as store:
            sender = build_sender(settings(rx.url, timeout=0.3, retry_base=60.0), store)
            await put(store, note("u1", due=time.time() - 100))
            await run_until(sender, lambda: sender.counts.get("retried") == 1)
            text = await stats.render(store)
    values = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if not line.startswith("#")
    }
    assert values["slotwise_notifications_retried_total"] == 1
    assert values["slotwise_notifications_sent_total"] == 0
    assert values["slotwise_notifications_pending"] == 1
    assert 99 < values["slotwise_notifications_lag_seconds"] < 200
