"""Erasure: the one path that forgets a user everywhere, and the check every writer makes.

``DELETE /_sw/admin/users/{id}`` calls :meth:`Erasure.erase`, which in this order

1. writes the user's tombstone (the erasure marker, :func:`erased_key`; kept for good, so later
   data about them is refused), and those of the anonymous ids ``identify()`` linked to them,
   then increments the erasure epoch (:data:`EPOCH_KEY`), from which every other worker and
   proxy on the store learns that its caches are to be emptied
   (slotwise.proxy.erased_request.watch_erasures);
2. asks every in-memory holder of this process (the decision log's queue, personal providers'
   caches: :meth:`Erasure.hold`) to drop what it holds about them, and counts it;
3. deletes their per-user keys, their entries in the events and decisions logs, their
   notifications (outbox, retries, dead letters: slotwise.proxy.notify.erasure) and what shared
   indexes hold about them (trigger audiences: :meth:`Erasure.purge_also`).

Writers race with that, in this process and in others sharing the store. Each one checks the
tombstone *after* its write lands (:meth:`Erasure.settle`) and erases again what it wrote about
a user found erased. Since the eraser writes the tombstone before it deletes, and a writer
reads it after it writes, one of the two always sees the other: either the writer's read sees
the tombstone (and the writer removes its own write), or the write landed before the tombstone
and hence before the eraser's deletes (which remove it). Writers also check before writing, so
that an erased user's data is normally not written at all; the check after is what makes it
stick.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from slotwise.proxy.events.aliases import linked
from slotwise.proxy.notify.erasure import erase_notifications
from slotwise.proxy.state import Store

_log = logging.getLogger(__name__)

#: An in-memory holder's forget: drop what is held about these subjects; how many records went.
Forget = Callable[[frozenset[str]], Awaitable[int]]
#: A store-side purge beyond the user's own keys (an index shared by users): one subject.
Purge = Callable[[str], Awaitable[object]]


#: Incremented by every erasure: workers that see it move empty their personal caches.
EPOCH_KEY = "erasure:epoch"


def subject_hash(subject: str) -> str:
    return hashlib.sha256(subject.encode()).hexdigest()


@functools.lru_cache(maxsize=8192)
def erased_key(subject: str) -> str:
    """The key of ``subject``'s erasure marker (kept: later data about them is refused).

    Cached: a batch of events reads its users' markers three times (before the append and in
    the two settle checks after the writes), and the hash is most of that work.
    """
    return f"erased:{subject_hash(subject)}"


@dataclass(frozen=True, slots=True)
class Erased:
    """What one erasure removed (``queued``: decision records still in this process's queue)."""

    keys: int
    events: int
    decisions: int
    queued: int
    repeat: bool


class Erasure:
    """Long-lived, one per process: built by the event collector, held by every writer."""

    def __init__(self, store: Store, *, events_log: str, decisions_log: str) -> None:
        self.store = store
        self._events_log = events_log
        self._decisions_log = decisions_log
        self._holders: list[Forget] = []
        self._purges: list[Purge] = []
        self.settled = 0  # writes removed after landing (a writer raced an erasure)

    @property
    def _store(self) -> Store:
        """The store with reads as patient as writes: erasure and its checks are off the
        request path, and a read that times out there fails a whole batch or erasure."""
        return self.store.patient()

    def hold(self, forget: Forget) -> None:
        """Register an in-memory holder of per-user data (called by every erasure here)."""
        self._holders.append(forget)

    def purge_also(self, purge: Purge) -> None:
        """Register a purge of what a shared index holds about a user (run before the user's
        own keys go, since it may read them to find its entries)."""
        self._purges.append(purge)

    async def erase(self, subject: str) -> Erased:
        """Forget ``subject`` and its linked anonymous ids (see the module docstring)."""
        first_time = await self._store.set_if_absent(erased_key(subject), b"1")
        subjects = await self._with_linked(subject)
        await self._store.incr(EPOCH_KEY)
        queued = 0
        for forget in self._holders:
            queued += await forget(frozenset(subjects))
        keys, events, decisions = await self._purge(subjects)
        erased_key.cache_clear()  # the cache holds user ids: none outlives their erasure here
        return Erased(keys, events, decisions + queued, queued, repeat=not first_time)

    async def erased(self, subjects: Iterable[str]) -> frozenset[str]:
        """Which of ``subjects`` carry a tombstone (one round trip)."""
        wanted = sorted(set(subjects))
        if not wanted:
            return frozenset()
        markers = await self._store.get_many([erased_key(s) for s in wanted])
        return frozenset(s for s, m in zip(wanted, markers, strict=True) if m is not None)

    async def settle(self, subjects: Iterable[str]) -> frozenset[str]:
        """After a write about ``subjects``: those now erased, with everything about them (and
        the ids linked to them) removed again, what was just written included."""
        erased = await self.erased(subjects)
        for subject in sorted(erased):
            keys, events, decisions = await self._purge(await self._with_linked(subject))
            if keys + events + decisions:
                self.settled += keys + events + decisions
                _log.info("erasure: a write raced an erasure; its data was removed again")
        return erased

    async def _with_linked(self, subject: str) -> list[str]:
        """The anonymous ids ``identify()`` linked to ``subject``, each marked erased too, and
        ``subject`` last (its keys hold the alias set: see :meth:`_purge`)."""
        subjects = [*await linked(self._store, subject), subject]
        for each in subjects[:-1]:
            await self._store.set_if_absent(erased_key(each), b"1")
        return subjects

    async def _purge(self, subjects: Sequence[str]) -> tuple[int, int, int]:
        """Delete the subjects' keys and log entries: (keys, events, decisions) removed.

        In order, the last subject's keys last: those hold the alias set, so an erasure that
        failed part way (the store went away) still finds every linked id when retried.
        """
        store = self._store
        keys = events = decisions = 0
        for each in subjects:
            events += await store.log_erase(self._events_log, each)
            decisions += await store.log_erase(self._decisions_log, each)
            await erase_notifications(store, each)
            for purge in self._purges:
                await purge(each)
            keys += await store.erase_subject(each)
        return keys, events, decisions

    async def erase_link(self, anonymous_id: str) -> None:
        """An anonymous id linked to an erased user while it was erased goes with the user."""
        await self._store.set_if_absent(erased_key(anonymous_id), b"1")
        await self._purge([anonymous_id])
