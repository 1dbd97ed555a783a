"""`slotwise report` over 1,000,000 decisions and their events: under 60 s of CPU, bounded memory.

A SQLite store is filled with a day of traffic (decisions of one campaign, 10% held out, two
slots, three device types; an impression per decision, clicks for about 6%), then
`slotwise report --store ... --segment-by device.type --format json` runs as a process; its
wall time and peak resident memory are measured, at 250,000 and at 1,000,000 decisions (the
memory of the bigger run must not grow with its size: the join holds one window of
decisions). The same for the exported JSONL files.

.venv/bin/pytest -m benchmark tests/benchmarks/test_report_scale.py -s
"""

from __future__ import annotations

import asyncio
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from slotwise.proxy.state import LogRecord, open_store
from tests.conftest import REPO

pytestmark = pytest.mark.benchmark
T0 = 1_764_547_200.0
DAY = 86_400.0
_json = msgspec.json.Encoder()


def _traffic(n: int, seed: int = 5) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """(decision records, store event envelopes, exported reward lines) of ``n`` decisions."""
    rng = random.Random(seed)
    decisions, events, rewards = [], [], []
    for i in range(n):
        ts = T0 + i * DAY / n
        held = rng.random() < 0.1
        device = ("mobile", "desktop", "tablet")[i % 3]
        headline, image = rng.choice(("h1", "h2", "h3")), rng.choice(("beach", "city"))
        slots = [] if held else [
            {"slot": "headline", "variant": headline, "probability": 1 / 3,
             "candidates": ["h1", "h2", "h3"]},
            {"slot": "image", "variant": image, "probability": 0.5,
             "candidates": ["beach", "city"]},
        ]  # fmt: skip
        decision_id = f"d-{i}"
        decisions.append(
            _json.encode(
                {"type": "decision", "id": decision_id, "ts": ts, "campaign": "spring",
                 "holdout": held, "holdout_share": 0.1, "personal": True,
                 "signals": {"device.type": device, "geo.country": "DE", "user.age": 30},
                 "slots": slots, "eligible": {"headline": ["h1", "h2", "h3"],
                                              "image": ["beach", "city"]},
                 "format": "json"}
            )
        )  # fmt: skip
        events.append(_envelope(decision_id, "impression", ts + 0.5))
        if rng.random() < (0.05 if held or headline == "h1" else 0.07):
            events.append(_envelope(decision_id, "click", ts + 4))
            rewards.append(
                _json.encode(
                    {"type": "reward", "decision_id": decision_id, "ts": ts + 4, "event": "click"}
                )
            )
    return decisions, events, rewards


def _envelope(decision_id: str, kind: str, ts: float) -> bytes:
    return _json.encode(
        {"received": ts, "consent": "personal",
         "event": {"type": kind, "id": f"{decision_id}.{kind}", "time": ts,
                   "decision_id": decision_id, "anonymous_id": "a-1"}}
    )  # fmt: skip


async def _fill(url: str, decisions: list[bytes], events: list[bytes]) -> None:
    async with open_store(url) as store:
        for log, data in (("decisions", decisions), ("events", events)):
            for start in range(0, len(data), 5000):
                await store.log_append(log, [LogRecord(d) for d in data[start : start + 5000]])


# the child reports its own peak memory: VmHWM of its address space (ru_maxrss would count
# the pages it shared with this big process between fork and exec)
_CHILD = (
    "import sys\n"
    "from slotwise.proxy.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
    "print('peak_kb', hwm, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def _report(*argv: str) -> tuple[float, float, float, bytes]:
    """Wall seconds and peak RSS (MB) of one `slotwise report` process, and its output (its
    CPU seconds are printed: on a shared machine they say more than the wall time)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, "report", *argv, "--segment-by", "device.type",
         "--format", "json"],
        cwd=REPO, capture_output=True, timeout=600, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - started
    assert done.returncode == 0, done.stderr.decode()
    peak = int(done.stderr.decode().rsplit("peak_kb", 1)[1].split()[0])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(
        f"\n  {argv[0][:40]}...: {wall:.1f} s wall, {cpu:.1f} s CPU, {os.getloadavg()[0]:.1f} load"
    )
    return wall, cpu, peak / 1024, done.stdout


@pytest.mark.parametrize("n", [250_000, 1_000_000])
def test_report_scale(tmp_path: Path, n: int) -> None:
    decisions, events, rewards = _traffic(n)
    url = f"sqlite:///{tmp_path}/state.db"
    asyncio.run(_fill(url, decisions, events))
    files = tmp_path / "decisions.jsonl", tmp_path / "rewards.jsonl"
    files[0].write_bytes(b"\n".join(decisions) + b"\n")
    files[1].write_bytes(b"\n".join(rewards) + b"\n")
    del decisions, events, rewards
    store_wall, store_cpu, store_rss, out = _report("--store", url)
    report = msgspec.json.decode(out)
    assert report["totals"]["decisions"] == n
    assert report["campaigns"][0]["decisions"] == n
    file_wall, file_cpu, file_rss, _ = _report(*map(str, files))
    print(
        f"\n{n:,} decisions + {report['totals']['events']:,} events: store (sqlite)"
        f" {store_wall:.1f} s, peak RSS {store_rss:.0f} MB; exported files {file_wall:.1f} s,"
        f" peak RSS {file_rss:.0f} MB; the join held at most"
        f" {report['totals']['open_peak']:,} decisions"
    )
    # the CPU time a report needs: on this machine, shared by several sessions, the wall time
    # is whatever share of the two cores it gets (both are printed and in docs/benchmarks.md)
    assert store_cpu < 60 and file_cpu < 60
    assert store_rss < 400 and file_rss < 400
