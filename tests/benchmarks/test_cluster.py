"""Issue 20's cluster test: three proxies (two workers each) and the learner on a six-node Redis
Cluster the test starts, ad requests, clicks and event batches (page views, conversions that
are rewards) through the proxies; mid-run a ``kill -9`` of one proxy's process group and of
the Redis primary holding the events log. Then: every event a proxy acknowledged (200) is in
the store, decisions went on (answers that passed through unpersonalised are counted), and
every proxy, the killed one restarted, serves the learner's models. Plus the scaling run:
requests/s and CPU seconds per request for 1, 2 and 3 proxies.

.venv/bin/python -m pytest -m benchmark tests/benchmarks/test_cluster.py -s -p no:cacheprovider
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec
import pytest

from slotwise.proxy.events import StoredEvent
from slotwise.proxy.state import open_store
from tests.support.cluster_deploy import EVENTS_STREAM, Deployment, Proc, deployment
from tests.support.servers import require_binary

pytestmark = [pytest.mark.benchmark, pytest.mark.redis, pytest.mark.slow]

CLIENTS = 12
RUN_SECONDS = 40.0
KILL_PROXY_AT = 8.0
KILL_PRIMARY_AT = 14.0
RESTART_PROXY_AT = 26.0
BATCH = 4
_DECODE = msgspec.json.Decoder(StoredEvent)


@dataclass
class Tally:
    decisions: int = 0  # answers with the proxy's tracking (personalised or holdout)
    passed_through: int = 0  # answers without it: fail-open, the upstream's ad unchanged
    ad_errors: int = 0  # no answer (the killed proxy): the client went to another one
    clicks: int = 0
    batches_acked: int = 0
    batches_refused: int = 0  # 503 (store failing over, replica not confirmed): resent
    batches_lost_reply: int = 0  # the proxy died under the request: resent elsewhere
    acknowledged: set[str] = field(default_factory=set)
    gave_up: int = 0  # batches never acknowledged within the run (not counted as lost)


class Traffic:
    """Clients behind a load balancer that drops a proxy once it stops answering."""

    def __init__(self, deployed: Deployment) -> None:
        self.deployed = deployed
        self.tally = Tally()
        self.down: set[str] = set()
        self.stop = asyncio.Event()
        self._next = itertools.count()

    def _pick(self) -> str:
        bases = [p.base for p in self.deployed.proxies if p.base not in self.down]
        return bases[next(self._next) % len(bases)]

    async def client(self, number: int) -> None:
        rng = random.Random(number)
        async with httpx.AsyncClient(timeout=10) as http:
            for n in itertools.count():
                if self.stop.is_set():
                    return
                user = f"u{number}-{rng.randrange(40)}"
                decision = await self._ad(http, user)
                await self._events(http, user, decision, f"c{number}-{n}")

    async def _ad(self, http: httpx.AsyncClient, user: str) -> str | None:
        base = self._pick()
        cookies = {"cookie": f"sw_consent=personal; sw_uid={user}"}
        try:
            answer = await http.get(f"{base}/ads/home-top", headers=cookies)
        except httpx.TransportError:
            self.tally.ad_errors += 1
            self.down.add(base)  # the health check took it out of rotation
            return None
        link = answer.json()["creative"]["click_url"]
        if not link.startswith("/_sw/click?"):
            self.tally.passed_through += 1
            return None
        self.tally.decisions += 1
        decision = re.search(r"[?&]d=([^&]+)", link)
        if random.random() < 0.5:  # half the ads are clicked: a reward
            try:
                click = await http.get(base + link, headers=cookies)
                self.tally.clicks += click.status_code == 302
            except httpx.TransportError:
                self.down.add(base)
        return decision.group(1) if decision else None

    async def _events(
        self, http: httpx.AsyncClient, user: str, decision: str | None, prefix: str
    ) -> None:
        events: list[dict[str, object]] = [
            {"type": "page_view", "id": f"{prefix}-{j}", "user_id": user,
             "properties": {"path": f"/p/{j}"}}
            for j in range(BATCH - 1)
        ]  # fmt: skip
        conversion: dict[str, object] = {
            "type": "conversion", "id": f"{prefix}-c", "user_id": user,
            "properties": {"value": 12.5, "currency": "EUR"},
        }  # fmt: skip
        if decision is not None:
            conversion["decision_id"] = decision  # a reward for the learner
        events.append(conversion)
        body = {"events": events, "consent": "personal"}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            base = self._pick()
            try:
                answer = await http.post(f"{base}/_sw/events", json=body)
            except httpx.TransportError:
                self.tally.batches_lost_reply += 1  # maybe stored, maybe not: resend
                self.down.add(base)
                continue
            if answer.status_code == 200:
                self.tally.batches_acked += 1
                self.tally.acknowledged.update(str(e["id"]) for e in events)
                return
            assert answer.status_code == 503, (answer.status_code, answer.text)
            self.tally.batches_refused += 1
            await asyncio.sleep(0.2)
        self.tally.gave_up += 1


async def _stored_event_ids(store_url: str) -> set[str]:
    ids: set[str] = set()
    async with open_store(store_url) as store:
        after = "0"
        while True:
            entries = await store.log_read("events", after=after, count=5000)
            if not entries:
                return ids
            for entry in entries:
                event = _DECODE.decode(entry.data).event
                if event.id is not None:
                    ids.add(event.id)
            after = entries[-1].position


async def _faults(deployed: Deployment, traffic: Traffic, started: float) -> dict[str, float]:
    """The kills, on schedule; the killed primary restarts once its replica took over."""
    loop = asyncio.get_running_loop()
    victim = deployed.proxies[1]
    times: dict[str, float] = {}
    await asyncio.sleep(max(0.0, started + KILL_PROXY_AT - loop.time()))
    victim.kill_group()
    times["proxy_killed"] = loop.time() - started
    await asyncio.sleep(max(0.0, started + KILL_PRIMARY_AT - loop.time()))
    primary = await asyncio.to_thread(deployed.cluster.primary_of, EVENTS_STREAM)
    assert primary is not None
    primary.kill()
    times["primary_killed"] = loop.time() - started
    while (now := await asyncio.to_thread(deployed.cluster.primary_of, EVENTS_STREAM)) in (
        None,
        primary,
    ):
        await asyncio.sleep(0.1)
    times["failed_over"] = loop.time() - started
    primary.start_again()  # as its supervisor would; it comes back as the new one's replica
    assert now is not None
    await asyncio.sleep(max(0.0, started + RESTART_PROXY_AT - loop.time()))
    victim.start()
    await asyncio.to_thread(deployed.wait_ready, victim, 120)
    traffic.down.discard(victim.base)  # healthy again: back in rotation
    times["proxy_back"] = loop.time() - started
    return times


async def _models_everywhere(deployed: Deployment, seconds: float = 90.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while True:
        versions = [await asyncio.to_thread(deployed.model_version, p) for p in deployed.proxies]
        if min(versions) > 0 or time.monotonic() > deadline:
            return versions
        await asyncio.sleep(0.5)


async def test_cluster_with_a_proxy_and_a_primary_killed(tmp_path: Path) -> None:
    require_binary("redis-cli")
    with deployment(tmp_path) as deployed:
        traffic = Traffic(deployed)
        loop = asyncio.get_running_loop()
        started = loop.time()
        clients = [asyncio.create_task(traffic.client(i)) for i in range(CLIENTS)]
        faults = asyncio.create_task(_faults(deployed, traffic, started))
        await asyncio.sleep(RUN_SECONDS)
        times = await faults
        traffic.stop.set()
        await asyncio.gather(*clients)
        elapsed = loop.time() - started
        versions = await _models_everywhere(deployed)
        stored = await _stored_event_ids(deployed.store_url)
        tally = traffic.tally
        lost = tally.acknowledged - stored
        learner_log = deployed.learner.log.read_text()
    schedule = json.dumps({k: round(v, 1) for k, v in times.items()})
    print(
        f"\ncluster run: {elapsed:.0f} s, faults at {schedule}"
        f"\n  ads: {tally.decisions} decided, {tally.passed_through} passed through,"
        f" {tally.ad_errors} unanswered (killed proxy); clicks 302: {tally.clicks}"
        f"\n  event batches: {tally.batches_acked} acknowledged ({len(tally.acknowledged)} events),"
        f" {tally.batches_refused} answered 503 and resent, {tally.batches_lost_reply} lost"
        f" replies resent, {tally.gave_up} given up; events stored: {len(stored)};"
        f" acknowledged and missing: {len(lost)}"
        f"\n  model versions served by proxy0..2: {versions}"
    )
    assert not lost, sorted(lost)[:10]
    assert tally.batches_acked > 100 and tally.decisions > 100
    assert tally.batches_refused > 0, "the primary's failover was not seen: not tested"
    assert min(versions) > 0, (versions, learner_log[-3000:])


# -- scaling ------------------------------------------------------------------------------

_WRK_RATE = re.compile(r"(\d+) requests in")
_WRK_BAD = re.compile(r"Non-2xx or 3xx responses: (\d+)")
SCALE_SECONDS = 8
SCALE_ROUNDS = 3


def _wrk(proxies: list[Proc], seconds: int) -> tuple[int, int, float]:
    """(requests, non-2xx, proxy CPU seconds): one wrk per proxy, all at once."""
    wrk = require_binary("wrk")
    cpu_before = sum(p.cpu_seconds() for p in proxies)
    runs = [
        subprocess.Popen(
            [
                wrk,
                "-t1",
                "-c8",
                f"-d{seconds}s",
                "--latency",
                "-H",
                "Cookie: sw_consent=personal; sw_uid=u1",
                f"{p.base}/ads/home-top",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for p in proxies
    ]
    outputs = [r.communicate(timeout=seconds + 60)[0] for r in runs]
    cpu = sum(p.cpu_seconds() for p in proxies) - cpu_before
    requests = sum(int(m.group(1)) for o in outputs if (m := _WRK_RATE.search(o)))
    bad = sum(int(m.group(1)) for o in outputs if (m := _WRK_BAD.search(o)))
    return requests, bad, cpu


async def test_cluster_scaling(tmp_path: Path) -> None:
    """Interleaved rounds of 1, 2 and 3 proxies under wrk; medians per proxy count."""
    rows: dict[int, list[tuple[float, float]]] = {1: [], 2: [], 3: []}
    with deployment(tmp_path) as deployed:
        _wrk(deployed.proxies, 2)  # warm-up: connections, compiled policies, first models
        for round_ in range(SCALE_ROUNDS):
            order = [1, 2, 3][round_ % 3 :] + [1, 2, 3][: round_ % 3]
            for count in order:
                requests, bad, cpu = await asyncio.to_thread(
                    _wrk, deployed.proxies[:count], SCALE_SECONDS
                )
                assert requests > 0 and bad == 0, (requests, bad)
                rows[count].append((requests / SCALE_SECONDS, cpu / requests))
    base_rate = statistics.median(r for r, _ in rows[1])
    base_cpu = statistics.median(c for _, c in rows[1])
    print("\nproxies | requests/s | proxy CPU ms/request | requests/s per proxy core | efficiency")
    for count, measured in rows.items():
        rate = statistics.median(r for r, _ in measured)
        cpu = statistics.median(c for _, c in measured)
        print(
            f"{count} | {rate:,.0f} (x{rate / base_rate:.2f}) | {cpu * 1000:.2f} |"
            f" {1 / cpu:,.0f} | wall {rate / (count * base_rate):.2f},"
            f" CPU {base_cpu / cpu:.2f}"
        )
