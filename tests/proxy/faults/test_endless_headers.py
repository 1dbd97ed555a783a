"""An upstream that streams header lines for ever, through ``slotwise serve`` (issue 21,
item 5): every answer is a 502 and the worker's memory grows by less than 50 MB (it grew
from 132 MB to 2,985 MB in 10 s)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.proxy.faults.support import get, measure, serve, upstream
from tests.proxy.support import children


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


async def _endless(seconds: float) -> tuple[float, float, dict[int, int]]:
    async with upstream() as up, serve(up.url) as proxy:
        workers = children(proxy.process.pid)
        assert workers, "no worker process"
        before = sum(rss_mb(w) for w in workers)
        figures = await measure(
            proxy.port, get("/endless-headers"), connections=32, seconds=seconds, timeout=30
        )
        after = sum(rss_mb(w) for w in children(proxy.process.pid))
        await asyncio.sleep(0)
        return before, after, dict(figures.statuses)


async def test_endless_upstream_headers_are_a_502_in_bounded_memory() -> None:
    before, after, statuses = await _endless(4.0)
    assert set(statuses) == {502} and statuses[502] > 0, statuses
    assert after - before < 50, (before, after)


@pytest.mark.benchmark
async def test_endless_upstream_headers_benchmark() -> None:
    before, after, statuses = await _endless(10.0)
    print(f"worker RSS {before:.1f} -> {after:.1f} MB over 10 s; answers {statuses}")
    assert set(statuses) == {502} and after - before < 50
