"""CPU per record of packing a Redis log entry, with and without tokens.

`python scripts/bench_pack_entry.py [ROUNDS]`: the day of events of
scripts/measure_user_memory.py as the collector stores them, as the scenario makes them and as
the browser SDK sends them (``--sdk-events`` there), packed by ``pack`` (deflate with the
preset dictionary: what versions before the tokens wrote, field ``z``) and by ``pack_entry``
(UUIDs and times as binary tokens first, field ``x``), and read back; medians of ROUNDS
interleaved rounds of 2,000 passes over the six records, CPU time per record, and the bytes
per record (docs/benchmarks.md).
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "scripts"))

import msgspec  # noqa: E402
from measure_user_memory import DAY, _events  # noqa: E402

from slotwise.proxy.events.collector import StoredEvent  # noqa: E402
from slotwise.proxy.state.packing import pack, pack_entry, unpack, unpack_tokens  # noqa: E402

PASSES = 2_000


def _records(sdk: bool) -> list[bytes]:
    events = _events(4567, DAY, "9f1c2a0b3d4e5f60", random.Random(11) if sdk else None)
    return [
        msgspec.json.encode(StoredEvent(received=1_796_504_359.812345, consent="personal", event=e))
        for e in events  # type: ignore[misc]
    ]


def _per_record(records: list[bytes], work: Callable[[bytes], object]) -> float:
    start = time.process_time()
    for _ in range(PASSES):
        for record in records:
            work(record)
    return (time.process_time() - start) / (PASSES * len(records)) * 1e6


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    for name, sdk in (("scenario events", False), ("SDK events", True)):
        records = _records(sdk)
        plain = [pack(r) or b"" for r in records]
        tokens = [pack_entry(r) or (b"", b"") for r in records]
        assert all(
            unpack_tokens(p) == r for (f, p), r in zip(tokens, records, strict=True) if f == b"x"
        )
        work: dict[str, Callable[[bytes], object]] = {"pack": pack, "pack_entry": pack_entry}
        cpu: dict[str, list[float]] = {k: [] for k in (*work, "unpack", "unpack_tokens")}
        for r in range(rounds):
            for key in work if r % 2 else reversed(list(work)):
                cpu[key].append(_per_record(records, work[key]))
            cpu["unpack"].append(_per_record(plain, unpack))
            cpu["unpack_tokens"].append(_per_record([p for _, p in tokens], unpack_tokens))
        size = {
            "pack": sum(map(len, plain)) / len(records),
            "pack_entry": sum(len(p) for _, p in tokens) / len(records),
        }
        print(f"{name}: {sum(map(len, records)) / len(records):.0f} B of JSON per record")
        for key, times in cpu.items():
            extra = f", {size[key]:.1f} B" if key in size else ""
            print(f"  {key:14} {statistics.median(times):6.2f} us per record{extra}")


if __name__ == "__main__":
    main()
