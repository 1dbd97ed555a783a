"""memory:// bytes per decision: `python scripts/measure_decision_memory.py [DECISIONS]`.

Queues DECISIONS (default 50,000) decision records of the example adserver campaign, with the
signals a browser-like request logs (the record of scripts/measure_user_memory.py), each with
a fresh decision id and one of 5,000 users as subject, through the real DecisionLog into a
``memory://`` store (as a worker of `slotwise serve` on its default store does), then reports
what the Python heap grew by per decision (tracemalloc: the log entry, its record bytes, its
position and time, the dedup id). The tree measured is this script's own or MEASURE_TREE's
(its decision records encoded as that tree's proxy stores them).
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import sys
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
ROOT = Path(os.environ.get("MEASURE_TREE", HERE))
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(HERE / "scripts"))

from measure_user_memory import _decision  # noqa: E402

from slotwise.proxy.events.decisions import DecisionLog  # noqa: E402
from slotwise.proxy.state import open_store  # noqa: E402
from slotwise.proxy.tracking import new_decision_id  # noqa: E402

try:  # the compact stored form (issue 22), else the JSON the proxy stored before it
    from slotwise.proxy.decision_codec import encode_stored as encode
except ImportError:
    from slotwise.proxy.decision_log import encode_record as encode


async def main(count: int) -> None:
    rng = random.Random(3)
    template = _decision(0, rng)
    sizes = []
    async with open_store("memory://") as store, DecisionLog(store) as decisions:
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for first in range(0, count, 500):
            for n in range(first, min(count, first + 500)):
                record = template.__class__(
                    **{
                        **{f: getattr(template, f) for f in template.__struct_fields__},
                        "id": new_decision_id(),
                        "ts": 1_796_504_236.8 + n * 0.01,
                    }
                )
                data = encode(record)
                sizes.append(len(data))
                decisions.record(data, decision_id=record.id, subject=f"user-{n % 5000}")
            await decisions.flush()
        del record, data
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        length = await store.log_length("decisions")
    print(
        f"tree {ROOT}: {length:,} decisions in memory://, record {sum(sizes) / len(sizes):,.0f} B;"
        f" heap {before:,} -> {after:,} B = {(after - before) / count:,.0f} B per decision"
    )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000))
