"""Aliases: an anonymous id linked to a known one, so that history follows the user.

The SDK sends both ids once ``identify()`` was called (``anonymous_id``: the ``sw_uid`` id
cookie the proxy keys decisions by; ``user_id``: the site's own id). A personal event carrying
both links them (:func:`link`): the anonymous id's alias record names the known id, the known
id's alias set lists the anonymous one, and the anonymous history is copied into the known
id's history. From then on events carrying only the anonymous id are stored under the known
id, and the ``profile`` provider reading the anonymous id reads the known id's profile and
history (slotwise.plugins.profile_source). Erasing the known id erases its aliases with it.
"""

from __future__ import annotations

from collections.abc import Iterable

from slotwise.proxy.state import Store, subject_key

ALIAS = "alias"  # under the anonymous id: the known id it was linked to
ALIASES = "aliases"  # under the known id: the set of anonymous ids linked to it


def alias_key(anonymous_id: str) -> str:
    """The key of the known id ``anonymous_id`` is linked to (erased with it)."""
    return subject_key(anonymous_id, ALIAS)


def aliases_key(user_id: str) -> str:
    """The key of the set of anonymous ids linked to ``user_id`` (erased with it)."""
    return subject_key(user_id, ALIASES)


async def resolve(store: Store, anonymous_ids: Iterable[str]) -> dict[str, str]:
    """The known id of each linked anonymous id (one round trip)."""
    ids = sorted(set(anonymous_ids))
    if not ids:
        return {}
    found = await store.get_many([alias_key(i) for i in ids])
    return {i: known.decode() for i, known in zip(ids, found, strict=True) if known is not None}


async def link(
    store: Store,
    anonymous_id: str,
    user_id: str,
    history: tuple[str, str],
    *,
    max_len: int,
    ttl: float,
) -> bool:
    """Link ``anonymous_id`` to ``user_id``; True when the link is new (or changed).

    ``history`` is the pair of history keys (anonymous, known): the anonymous history is
    copied into the known one when the link is made. A later link of the same anonymous id to
    another known id (a shared device) replaces the first.
    """
    if await store.get(alias_key(anonymous_id)) == user_id.encode():
        return False
    # the set first: erasure finds linked ids by it, and the record below is what makes the
    # link "done" (the check above). In the other order a write that failed between the two
    # (a timeout under load) left a link the user's erasure never found, and never repaired,
    # since every later event saw the record and stopped here
    await store.set_add(aliases_key(user_id), anonymous_id.encode(), ttl=ttl)
    await store.set(alias_key(anonymous_id), user_id.encode(), ttl=ttl)
    items = await store.history(history[0])
    if items and max_len > 0:
        await store.history_append(history[1], items, max_len=max_len, ttl=ttl)
    return True


async def linked(store: Store, user_id: str) -> list[str]:
    """The anonymous ids linked to ``user_id``."""
    return sorted(member.decode() for member in await store.set_members(aliases_key(user_id)))
