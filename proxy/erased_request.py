"""A request naming an erased user: nothing personal about them is used, cached or not.

The ``profile`` provider reads the user's tombstone (``DELETE /_sw/admin/users/{id}``) in the
same store round trip as their profile and says ``user.erased``. That answer is fresh on every
worker and every proxy sharing the store, while what personal providers return may come from a
worker's TTL cache, filled before the erasure (the erasure empties the caches of the worker
that answers it at once, the other workers' within ``ERASURE_EPOCH_EVERY``:
:func:`watch_erasures`). So the request's personal signals are dropped, whichever provider
or cache they came from: the request is served as an anonymous one with personal consent
(and a fresh id, slotwise.proxy.decide._identify).
"""

from __future__ import annotations

import asyncio
import logging
from types import MappingProxyType

import msgspec

from slotwise.plugins.gather import Gathered
from slotwise.plugins.loaded import ProviderSet
from slotwise.proxy.events.erasure import EPOCH_KEY
from slotwise.proxy.state import Store
from slotwise.types import NoHistory

_log = logging.getLogger(__name__)

ERASED = "user.erased"
#: Seconds between a worker's reads of the epoch: how long an erased user's cached signals
#: may stay in another worker's memory (they are never used meanwhile: see above).
ERASURE_EPOCH_EVERY = 1.0


def without_personal(providers: ProviderSet, gathered: Gathered) -> Gathered:
    """``gathered`` without the personal providers' signals (``user.erased`` kept) or history."""
    personal = {name for loaded in providers.personal for name in loaded.specs}
    personal.discard(ERASED)
    kept = {k: v for k, v in gathered.signals.items() if k not in personal}
    return msgspec.structs.replace(gathered, signals=MappingProxyType(kept), history=NoHistory())


def empty_personal_caches(providers: ProviderSet) -> None:
    """Empty the personal providers' TTL caches (their keys are the provider's own, so an
    erased user's entries cannot be told apart from others'), and what a provider derived
    from a user's records (``empty_memo``: the profile provider's per-user signals)."""
    for loaded in providers.personal:
        if loaded.cache is not None:
            loaded.cache.clear()
        if loaded.validated is not None:  # gather's validated copies of reused results
            loaded.validated.clear()
        empty_memo = getattr(loaded.provider, "empty_memo", None)
        if callable(empty_memo):
            empty_memo()


async def watch_erasures(store: Store, providers: ProviderSet) -> None:
    """Until cancelled: empty this worker's personal caches whenever the erasure epoch moves
    (an erasure answered by another worker or proxy). A failing store is retried quietly:
    the request path needs none of this to keep erased users' data unused."""
    seen: int | None = None
    failing = False
    while True:
        try:
            epoch = await store.counter(EPOCH_KEY)
            if seen is not None and epoch != seen:
                empty_personal_caches(providers)
            seen, failing = epoch, False
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the store is away: the next read tells
            if not failing:
                _log.warning("erasure: cannot read the erasure epoch (%s); retrying", exc)
            failing = True
        await asyncio.sleep(ERASURE_EPOCH_EVERY)
