"""The outbox contract: one record per idempotency key, erased with its user."""

from __future__ import annotations

from slotwise.proxy.notify.outbox import (
    OUTBOX_LOG,
    Notification,
    decode,
    enqueue,
    notification_key,
)
from slotwise.proxy.state import open_store


def _note(subject: str, episode: float) -> Notification:
    return Notification(
        key=notification_key(subject, "cart_abandon", episode),
        subject=subject,
        trigger="cart_abandon",
        channel="webhook",
        template="crm",
        due=episode + 3600,
        created=episode,
        offer={"id": "d.discount_10", "type": "discount", "value": 10},
    )


async def test_the_same_episode_is_enqueued_once_and_erased_with_its_user() -> None:
    async with open_store("memory://") as store:
        first = await enqueue(store, [_note("u1", 1000.25), _note("u2", 1000.25)])
        again = await enqueue(store, [_note("u1", 1000.25), _note("u1", 2000.0)])
        assert None not in first and again[0] is None and again[1] is not None
        entries = await store.log_read(OUTBOX_LOG)
        assert [decode(e.data).key for e in entries] == [
            "u1:cart_abandon:1000250",
            "u2:cart_abandon:1000250",
            "u1:cart_abandon:2000000",
        ]
        assert await store.log_erase(OUTBOX_LOG, "u1") == 2
        assert [decode(e.data).subject for e in await store.log_read(OUTBOX_LOG)] == ["u2"]
