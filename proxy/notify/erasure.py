"""Erasing a user's notifications: pending ones in the outbox, replay requests and dead
letters (their delivery states are user keys, which ``Store.erase_subject`` removes)."""

from __future__ import annotations

from slotwise.proxy.notify.outbox import OUTBOX_LOG
from slotwise.proxy.notify.schedule import DEAD_LOG, PENDING_SET, REPLAY_LOG, parse_member
from slotwise.proxy.state.base import Store


async def erase_notifications(store: Store, subject: str) -> int:
    """Remove ``subject``'s notification records; how many were removed."""
    removed = 0
    for log in (OUTBOX_LOG, REPLAY_LOG, DEAD_LOG):
        removed += await store.log_erase(log, subject)
    members = await store.set_members(PENDING_SET)
    mine = [m for m in members if (parse_member(m) or ("", ""))[0] == subject]
    if mine:
        removed += await store.set_remove(PENDING_SET, *mine)
    return removed
