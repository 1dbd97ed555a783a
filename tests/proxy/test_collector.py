"""The worker's garbage collector (slotwise.proxy.collector): frozen after start-up and its young
generation collected less often, through the entry `slotwise serve` runs; undone at shutdown;
left alone with `proxy.gc_threshold = 0`; shown per worker in the metrics."""

from __future__ import annotations

import gc
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from slotwise.proxy.app import ProxyApp
from slotwise.proxy.collector import CollectorTuning, collector_metrics
from slotwise.proxy.config import Settings
from slotwise.proxy.entry import AsgiEntry
from tests.conftest import REPO
from tests.proxy.support import SPRING_AD, Canned, running, serve_process, upstream_server

POLICIES = REPO / "examples" / "adserver" / "policies"
_FROZEN = re.compile(r"^process_gc_frozen_objects\{worker=\"(\d+)\"\} (\d+)$", re.M)


@pytest.fixture(autouse=True)
def _collector_as_found() -> Iterator[None]:
    """Each test starts with nothing frozen (another test's benchmark may have frozen the
    process: unfreezing only hands those objects back to the collector) and leaves the
    thresholds as it found them, whatever it asserts."""
    before = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def _ad() -> Canned:
    return Canned(200, [("Content-Type", "application/json")], json.dumps(SPRING_AD).encode())


async def test_the_started_worker_freezes_start_up_and_collects_young_objects_less_often() -> None:
    before = gc.get_threshold()
    async with upstream_server({"/ads/home-top": _ad()}) as upstream:
        settings = Settings.of(
            upstream_url=upstream.url, proxy_policies=str(POLICIES), proxy_metrics_public=True
        )
        async with running(AsgiEntry(ProxyApp(settings))) as client:
            assert gc.get_threshold() == (10_000, before[1], before[2])
            frozen = gc.get_freeze_count()
            assert frozen > 1000  # the modules, the compiled policies, the providers
            answer = await client.get("/ads/home-top", headers={"cookie": "sw_consent=personal"})
            assert answer.status_code == 200 and answer.json()["tracking"]["impressions"]
            metrics = (await client.get("/_sw/metrics")).text
            [(_, shown)] = _FROZEN.findall(metrics)
            assert int(shown) > 1000  # frozen objects freed by reference counting leave it
            assert re.search(r'^process_gc_collections_total\{worker="\d+",generation="0"\} \d+$',
                             metrics, re.M)  # fmt: skip
    # shutdown gives the process back as it was
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


async def test_a_zero_threshold_leaves_the_collector_as_python_sets_it() -> None:
    before = gc.get_threshold()
    settings = Settings.of(
        upstream_url="http://127.0.0.1:9", proxy_policies="", proxy_gc_threshold=0
    )
    async with running(AsgiEntry(ProxyApp(settings))):
        assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


async def test_the_app_alone_does_not_touch_the_process_collector() -> None:
    """An app embedded in another ASGI server's process leaves its collector to that process."""
    before = gc.get_threshold()
    async with running(ProxyApp(Settings.of(upstream_url="http://127.0.0.1:9", proxy_policies=""))):
        assert gc.get_threshold() == before and gc.get_freeze_count() == 0


async def test_a_failed_start_up_settles_nothing() -> None:
    tuning = CollectorTuning(5_000)
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    watched = tuning.watching(send)
    await watched({"type": "lifespan.startup.failed", "message": "no store"})
    assert not tuning.active and gc.get_freeze_count() == 0
    assert sent == [{"type": "lifespan.startup.failed", "message": "no store"}]
    await watched({"type": "lifespan.startup.complete"})
    assert tuning.active and gc.get_threshold()[0] == 5_000
    tuning.settle()  # twice: still one freeze, and release restores the first thresholds
    tuning.release()
    assert not tuning.active and gc.get_freeze_count() == 0


def test_the_metrics_name_each_generation_and_the_frozen_objects() -> None:
    text = collector_metrics(4242)
    generations = re.findall(
        r'^process_gc_collections_total\{worker="4242",generation="(\d)"\} \d+$', text, re.M
    )
    assert generations == ["0", "1", "2"]
    assert _FROZEN.findall(text) == [("4242", "0")]


@pytest.mark.slow
async def test_slotwise_serve_with_a_zero_threshold_freezes_nothing() -> None:
    """The default is asserted served in test_workers (two workers, each frozen)."""
    async with upstream_server({"/ads/home-top": _ad()}) as upstream:
        async with serve_process(
            upstream.url, POLICIES, env={"SLOTWISE_PROXY_GC_THRESHOLD": "0"}
        ) as base:
            async with httpx.AsyncClient(base_url=base) as client:
                answer = await client.get("/ads/home-top")
                assert answer.status_code == 200
                metrics = (await client.get("/_sw/metrics")).text
    [(_, frozen)] = _FROZEN.findall(metrics)
    assert frozen == "0"
