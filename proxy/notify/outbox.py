"""The durable outbox: what a trigger asked to send, kept in the store until delivered.

The outbox is one store log (:data:`OUTBOX_LOG`). A notification's ``key`` is its idempotency
key, one per (user, trigger, episode): enqueueing the same key again within
:data:`DEDUP_SECONDS` stores nothing, and the receiver of a webhook sees the same key as the
message id on every retry, so at-least-once delivery never becomes a duplicate beyond the key.
Records carry the user as their subject, so erasing the user erases their pending notifications.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from slotwise.proxy.state.base import LogRecord, Store

OUTBOX_LOG = "notify:outbox"
#: How long an idempotency key is remembered by the outbox (longer than any trigger window).
DEDUP_SECONDS = 90 * 24 * 3600.0

_encoder = msgspec.json.Encoder()


class Notification(msgspec.Struct, frozen=True, kw_only=True):
    """One message to send to one user, as the trigger engine asks for it."""

    key: str  # idempotency key: notification_key(subject, trigger, episode)
    subject: str  # the user id (the record's subject: erased with the user)
    trigger: str  # the trigger's name in the policy
    channel: str  # "email" or "webhook" (Notify.channel)
    template: str  # the template (email) or endpoint (webhook) name the policy gives
    due: float  # seconds since the epoch: the `on` event's time plus the trigger's `wait`
    created: float  # when the trigger engine enqueued it
    quiet_start: int | None = None  # minutes after midnight, in the user's time zone
    quiet_end: int | None = None
    time_zone: str | None = None  # IANA name from the user's signals (None: UTC)
    traits: dict[str, Any] = msgspec.field(default_factory=dict)  # for the template
    offer: dict[str, Any] | None = None  # the ladder's offer for the cart, if any


def notification_key(subject: str, trigger: str, episode: float) -> str:
    """The idempotency key of ``trigger``'s notification to ``subject`` for one episode.

    ``episode`` is the time of the ``on`` event that started it (kept to the millisecond, so the
    key is the same on every proxy that evaluates the same event).
    """
    return f"{subject}:{trigger}:{int(episode * 1000)}"


def encode(notification: Notification) -> bytes:
    return _encoder.encode(notification)


def decode(data: bytes) -> Notification:
    return msgspec.json.decode(data, type=Notification)


def outbox_records(notifications: Sequence[Notification]) -> list[LogRecord]:
    """The outbox records of ``notifications`` (append with ``dedup_ttl=DEDUP_SECONDS``)."""
    return [LogRecord(encode(n), subject=n.subject, id=n.key) for n in notifications]


async def enqueue(store: Store, notifications: Sequence[Notification]) -> list[str | None]:
    """Durably append ``notifications``; a key already enqueued is not stored again (None)."""
    records = outbox_records(notifications)
    return await store.log_append(OUTBOX_LOG, records, dedup_ttl=DEDUP_SECONDS)
