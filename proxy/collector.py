"""Python's cyclic garbage collector, set for a serving worker by ``slotwise serve``.

A personalised request allocates a few hundred container objects and frees nearly all of them
by reference counting as it ends: the request path makes no reference cycles. Python still
counts the allocations and, at its default of 700 net ones, collects the young generation;
with tens of requests in flight, each holding its objects, that was a collection every ~40
requests (docs/benchmarks.md, "The garbage collector", sizes it).

:class:`CollectorTuning` therefore, once start-up is complete: collects what start-up left,
freezes the rest (``gc.freeze``: the modules, the compiled policies, the loaded models and the
providers' tables, which live as long as the worker, are never walked again) and raises the
young generation's threshold to ``[proxy] gc_threshold`` (10,000 by default: a young collection
then walks about that many objects, 1-2 ms every ~1,300 browser-like requests, where 700 meant
~50 us every ~40; measured, p99 latency did not move). At shutdown it undoes both,
so a process that runs apps one after another (the tests) is left as it found it. It is
process-wide, which is why the worker's entry (:class:`slotwise.proxy.entry.AsgiEntry`, what
``slotwise serve`` runs) applies it, not :class:`~slotwise.proxy.app.ProxyApp`, which another
ASGI server's process may embed.
"""

from __future__ import annotations

import gc

from slotwise.types import Message, Send


class CollectorTuning:
    """Freeze and raise the young threshold after start-up; undo at shutdown (0: do nothing)."""

    def __init__(self, young_threshold: int) -> None:
        self.young_threshold = young_threshold
        self._before: tuple[int, int, int] | None = None

    @property
    def active(self) -> bool:
        return self._before is not None

    def settle(self) -> None:
        """Start-up is complete: freeze what it built, collect the young generation less often."""
        if not self.young_threshold or self._before is not None:
            return
        self._before = gc.get_threshold()
        gc.collect()  # what start-up left as garbage is not frozen with the rest
        gc.freeze()
        gc.set_threshold(self.young_threshold, self._before[1], self._before[2])

    def release(self) -> None:
        """Shutdown: the frozen objects are collectable again, the thresholds as they were."""
        if self._before is None:
            return
        gc.unfreeze()
        gc.set_threshold(*self._before)
        self._before = None

    def watching(self, send: Send) -> Send:
        """``send`` for the lifespan: settles before start-up is reported complete (no request
        waits on the collection) and releases before shutdown is."""

        async def watched(message: Message) -> None:
            kind = message["type"]
            if kind == "lifespan.startup.complete":
                self.settle()
            elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                self.release()
            await send(message)

        return watched


def collector_metrics(pid: int) -> str:
    """This process's collections by generation and its frozen objects, labelled like the
    ``process_*`` metrics (per live worker, slotwise.proxy.metrics_share)."""
    worker = f'worker="{pid}"'
    lines = [
        "# HELP process_gc_collections_total Python's cyclic garbage collections in each worker, "
        "by generation (proxy.gc_threshold).",
        "# TYPE process_gc_collections_total counter",
    ]
    for generation, stats in enumerate(gc.get_stats()):
        lines.append(
            f'process_gc_collections_total{{{worker},generation="{generation}"}} '
            f"{stats['collections']}"
        )
    lines += [
        "# HELP process_gc_frozen_objects Objects each worker froze out of the garbage collector "
        "once started (0: proxy.gc_threshold is 0).",
        "# TYPE process_gc_frozen_objects gauge",
        f"process_gc_frozen_objects{{{worker}}} {gc.get_freeze_count()}",
    ]
    return "\n".join(lines) + "\n"
