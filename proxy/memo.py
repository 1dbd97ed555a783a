"""Bounded memos of pure functions of bytes on the request path.

The request path remembers what it derives from bytes that repeat (a response head, a request
path); the function is pure, so a hit is exact. A memo is a plain dict its owner reads with
``.get`` (the hit, per request, stays inline); :func:`remember` is the miss: a memo is emptied
when full (cheaper per request than evicting by age, and the next few requests fill it again),
and keys longer than ``key_bytes`` are never kept.
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def remember(memo: dict[bytes, T], key: bytes, value: T, entries: int, key_bytes: int) -> None:
    """Keep ``value`` under ``key`` in ``memo`` within its bounds."""
    if len(key) <= key_bytes:
        if len(memo) >= entries:
            memo.clear()
        memo[key] = value
