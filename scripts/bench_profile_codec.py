"""A stored profile decoded as the profile provider does, JSON against the compact form.

`python scripts/bench_profile_codec.py [ROUNDS]`: CPU time per decode of the same CRM
profile (age, gender, two segments, visits, first seen, e-mail, time zone) in its JSON form
(what versions before issue 22 stored) and its compact form (what the admin endpoint stores
now), medians of ROUNDS interleaved rounds of 50,000 calls (docs/benchmarks.md).
"""

from __future__ import annotations

import statistics
import sys
import time

import msgspec

from slotwise.plugins.profile_source import decode_profile
from slotwise.proxy.events.profiles import ProfileRecord, encode_profile

RECORD = ProfileRecord(
    age=41,
    gender="f",
    segments=("newsletter", "deal-hunter"),
    visits=12,
    first_seen=1_741_910_400.0,
    email="customer12345@example.com",
    time_zone="Europe/Berlin",
)
CALLS = 50_000


def _per_call(raw: bytes) -> float:
    start = time.process_time()
    for _ in range(CALLS):
        decode_profile(raw)
    return (time.process_time() - start) / CALLS * 1e6


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    forms = {"json": msgspec.json.encode(RECORD), "compact": encode_profile(RECORD)}
    times: dict[str, list[float]] = {name: [] for name in forms}
    for _ in range(rounds):
        for name, raw in forms.items():
            times[name].append(_per_call(raw))
    for name, raw in forms.items():
        print(f"{name:8} {len(raw):4} B  decode {statistics.median(times[name]):.2f} us")


if __name__ == "__main__":
    main()
