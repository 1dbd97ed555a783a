"""The click-signing key every worker and machine shares.

A signed click (``/_sw/click``) may come back to any worker of any proxy, so all of them must
verify with the same key. ``tracking.secret`` names it; when it is empty, the key lives in the
state store: the first process to start writes a random one (set-if-absent, so concurrent
starts agree) and every other reads it. On ``memory://`` the store is per process, so
``slotwise serve`` draws one key for all its workers before they start (only that server's
workers share it; a restart draws a new one, and the start says so).

Rotation: set the new key as ``tracking.secret`` and keep the old one in
``tracking.previous_secrets`` for as long as links signed with it may still be clicked (the
lifetime of cached ad markup); they verify but never sign.
"""

from __future__ import annotations

import secrets
from typing import Final

from slotwise.proxy.state import Store, StoreError

STORE_KEY: Final = "slotwise:tracking:click_key"
_KEY_BYTES: Final = 32


async def shared_click_key(store: Store) -> bytes:
    """The store's click key, written first if there is none (whoever writes first wins)."""
    drawn = secrets.token_hex(_KEY_BYTES).encode("ascii")
    for _ in range(3):  # the key could be deleted between the two calls: ask again
        if await store.set_if_absent(STORE_KEY, drawn):
            return drawn
        kept = await store.get(STORE_KEY)
        if kept is not None:
            if len(kept) < 16:
                raise StoreError(f"the store's {STORE_KEY} is shorter than 16 bytes")
            return kept
    raise StoreError(f"the store's {STORE_KEY} keeps disappearing")


def fresh_click_key() -> str:
    """A random key for the workers of one ``slotwise serve`` on ``memory://``."""
    return secrets.token_hex(_KEY_BYTES)
