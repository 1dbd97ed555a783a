"""The catalogue a worker serves from: a snapshot reference, the feed, and the change log.

:class:`LiveCatalogue` loads the feed at start (a bad feed stops the start, naming the line),
then keeps ``current`` up to date: a change made through the admin API is applied at once by
the worker that took it and appended to the store's ``catalogue`` log, which every worker
tails every ``poll_interval`` (so all of them apply it, in order); a feed file that changed on
disk is reloaded, with the logged changes made after it was written applied on top (a newer
feed supersedes older changes). Each update swaps ``current`` by reference: a request reads
the snapshot it started with.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec

from slotwise.proxy.catalogue.config import CatalogueConfig
from slotwise.proxy.catalogue.item import CatalogueError, ItemChange, parse_feed
from slotwise.proxy.catalogue.snapshot import CatalogueSnapshot
from slotwise.proxy.state import LogRecord, Store

log = logging.getLogger(__name__)
CHANGES_LOG = "catalogue"
_ENCODE = msgspec.json.Encoder()
_DECODE = msgspec.json.Decoder(ItemChange)
_MAX_REMEMBERED = 100_000  # changes kept to re-apply over a reloaded feed


class LiveCatalogue:
    """One worker's catalogue: ``current`` is the snapshot requests read."""

    def __init__(self, config: CatalogueConfig, store: Store | None = None) -> None:
        self.config = config
        self.store = store
        self.current = CatalogueSnapshot()
        self._feed_mtime: float | None = None
        self._after = "0"  # the change log position read so far
        self._changes: list[ItemChange] = []  # every logged change, for feed reloads

    @classmethod
    def of(cls, snapshot: CatalogueSnapshot) -> LiveCatalogue:
        """A catalogue that is just this snapshot (tests, replay, benchmarks)."""
        live = cls(CatalogueConfig())
        live.current = snapshot
        return live

    async def load(self) -> None:
        """The feed, then every logged change made after it. Raises CatalogueError."""
        self._load_feed()
        await self.poll_changes()

    def _load_feed(self) -> bool:
        path = self.config.feed
        if not path:
            return False
        try:
            mtime = os.stat(path).st_mtime
            if mtime == self._feed_mtime:
                return False
            data = Path(path).read_bytes()
        except OSError as exc:
            raise CatalogueError(
                f"cannot read the catalogue feed {path}: {exc.strerror}",
                where="catalogue.feed",
                hint="set catalogue.feed to a JSON Lines or CSV file",
            ) from None
        items = parse_feed(data, path)
        snapshot = CatalogueSnapshot.of(items, self.current.version + 1)
        later = [c for c in self._changes if c.at > mtime]
        self.current = snapshot.changed(later) if later else snapshot
        self._feed_mtime = mtime
        log.info("catalogue: %d items from %s", len(items), path)
        return True

    async def apply(self, changes: Sequence[ItemChange]) -> None:
        """An admin change: logged for every worker, then applied here at once."""
        if self.store is not None:
            records = [LogRecord(_ENCODE.encode(c)) for c in changes]
            await self.store.log_append(CHANGES_LOG, records)
        self.current = self.current.changed(changes)
        self._remember(changes)

    async def poll_changes(self) -> int:
        """Apply the changes other workers logged since the last poll; how many."""
        if self.store is None:
            return 0
        fresh: list[ItemChange] = []
        while True:
            entries = await self.store.log_read(CHANGES_LOG, after=self._after, count=1000)
            if not entries:
                break
            self._after = entries[-1].position
            for entry in entries:
                try:
                    fresh.append(_DECODE.decode(entry.data))
                except msgspec.DecodeError:
                    log.warning("catalogue: skipped an unreadable change at %s", entry.position)
        # this worker's own changes come back too: applied again in the log's order, which is
        # the order every worker agrees on (a later change by another worker wins everywhere)
        if fresh:
            self.current = self.current.changed(fresh)
            self._remember(fresh)
        return len(fresh)

    def _remember(self, changes: Sequence[ItemChange]) -> None:
        self._changes.extend(changes)
        if len(self._changes) > _MAX_REMEMBERED:  # bounded: only a feed reload reads them
            del self._changes[: len(self._changes) - _MAX_REMEMBERED]

    async def watch(self) -> None:
        """Forever: pick up feed file changes and other workers' admin changes."""
        while True:
            await asyncio.sleep(self.config.poll_interval)
            try:
                self._load_feed()
                await self.poll_changes()
            except CatalogueError as exc:  # a broken feed on disk: keep serving the last one
                log.warning("catalogue: %s (the previous catalogue is kept)", exc)
            except Exception as exc:
                log.warning("catalogue: update failed: %s", exc)


def change(op: str, item_id: str, **fields: object) -> ItemChange:
    """An ItemChange made now."""
    return msgspec.convert({"op": op, "id": item_id, "at": time.time(), **fields}, ItemChange)
