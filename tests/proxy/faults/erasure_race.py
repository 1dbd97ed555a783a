"""The erasure race, one run at a time: shared by the CI test and the 100-run benchmark.

One run, for a fresh user ``u`` and the anonymous id ``a`` linked to it:

1. seed: events with both ids (a link and two histories), a profile, a stored decision;
2. a store outage: decisions about ``u`` and ``a`` are recorded meanwhile and stay queued;
3. the race: the store comes back at a random moment (for a moment its writes land without
   being acknowledged, as writes that time out do), while event batches about ``u`` and ``a``
   are posted, decisions are recorded and ``DELETE /_sw/admin/users/u`` is sent (retried on
   503) through the events endpoints, each after random jitter;
4. settle: the decision log flushed, the collector's background work done.

Residue is anything about ``u`` or ``a`` left in the store afterwards: an entry of the events,
decisions or outbox log whose subject or bytes name them, a history, profile, alias or alias
set. There must be none.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

from slotwise.proxy.events import DecisionLog, EventCollector, EventsConfig, events_routes
from slotwise.proxy.events.aliases import alias_key, aliases_key
from slotwise.proxy.events.collector import history_key
from slotwise.proxy.notify.outbox import OUTBOX_LOG
from slotwise.proxy.state import StoreUnavailable, open_store, subject_key
from tests.support.faults import OutageStore

TOKEN = "race-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Rig:
    client: httpx.AsyncClient
    store: OutageStore
    collector: EventCollector
    decisions: DecisionLog
    answers: list[dict[str, object]] = field(default_factory=list)


@asynccontextmanager
async def rig(url: str) -> AsyncIterator[Rig]:
    async with open_store(url) as real:
        store = OutageStore(real)
        config = EventsConfig(admin_token=TOKEN, history_max_len=50)
        async with EventCollector(store, config) as collector:  # type: ignore[arg-type]
            decisions = DecisionLog(
                store,  # type: ignore[arg-type]
                erasure=collector.erasure,
                retry_delay=0.005,
            )
            async with decisions:
                app = Starlette(routes=[Mount("/_sw", routes=events_routes(collector))])
                transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                    yield Rig(client, store, collector, decisions)


def _batch(n: int, ids: dict[str, str], tag: str) -> dict[str, object]:
    events = [
        {"type": "add_to_cart", "id": f"{tag}-{n}-{i}", **ids,
         "properties": {"product_id": f"p-{tag}", "price": 9.5}}
        for i in range(3)
    ]  # fmt: skip
    return {"consent": "personal", "events": events}


async def _post(r: Rig, body: dict[str, object]) -> None:
    answer = await r.client.post("/_sw/events", json=body)
    assert answer.status_code in (200, 503), answer.text


async def _jitter(rng: random.Random, most: float = 0.006) -> None:
    await asyncio.sleep(rng.uniform(0, most))


async def one_run(r: Rig, n: int, rng: random.Random) -> list[str]:
    """One run (see the module docstring); the residue found (empty: none)."""
    user, anon = f"u{n}", f"a{n}"
    store = r.store
    await _post(r, _batch(n, {"user_id": user, "anonymous_id": anon}, "seed"))
    await _post(r, _batch(n, {"anonymous_id": anon}, "seed-anon"))
    await r.collector.set_profile(user, b'{"age": 33, "segments": ["vip"]}', actor="crm")
    r.decisions.record(b'{"seed": "%s"}' % user.encode(), decision_id=f"d{n}-0", subject=user)
    await r.decisions.flush()
    await _drain(r)

    store.down = True  # the outage: decisions queue up
    for i in range(rng.randint(1, 6)):
        subject = user if i % 2 == 0 else anon
        r.decisions.record(b'{"q": "%s"}' % subject.encode(), decision_id=f"d{n}-q{i}",
                           subject=subject)  # fmt: skip

    async def back() -> None:
        await _jitter(rng, 0.02)
        store.down = False
        if rng.random() < 0.5:  # for a moment writes land unacknowledged
            store.uncertain = True
            await _jitter(rng, 0.01)
            store.uncertain = False

    async def events() -> None:
        for k in range(4):
            await _jitter(rng)
            ids = {"user_id": user, "anonymous_id": anon} if k % 2 else {"anonymous_id": anon}
            await _post(r, _batch(n, ids, f"race{k}"))

    async def decisions() -> None:
        for k in range(6):
            await _jitter(rng)
            subject = user if k % 3 else anon
            r.decisions.record(b'{"r": "%s"}' % subject.encode(), decision_id=f"d{n}-r{k}",
                               subject=subject)  # fmt: skip

    async def erase() -> None:
        await _jitter(rng, 0.015)
        for _ in range(400):
            answer = await r.client.delete(f"/_sw/admin/users/{user}", headers=AUTH)
            if answer.status_code == 200:
                r.answers.append(answer.json())
                return
            assert answer.status_code == 503, answer.text
            await asyncio.sleep(0.005)
        raise AssertionError("the erasure never succeeded")

    await asyncio.gather(back(), events(), decisions(), erase())
    store.down = store.uncertain = False
    await _drain(r)
    return await residue(r, (user, anon))


async def _drain(r: Rig) -> None:
    """Every queued decision appended, every background write of the collector done."""
    for _ in range(200):
        try:
            await r.decisions.flush()
            break
        except StoreUnavailable:
            await asyncio.sleep(0.01)
    while r.collector._background:
        await asyncio.gather(*list(r.collector._background), return_exceptions=True)


async def residue(r: Rig, subjects: tuple[str, ...]) -> list[str]:
    store = r.store.inner
    found: list[str] = []
    for log in ("events", "decisions", OUTBOX_LOG):
        after = "0"
        while entries := await store.log_read(log, after=after, count=1000):
            after = entries[-1].position
            for entry in entries:
                for s in subjects:
                    if entry.subject == s or f'"{s}"'.encode() in entry.data:
                        found.append(f"{log} entry {entry.position} about {s}")
    for s in subjects:
        if await store.history(history_key(s)):
            found.append(f"history of {s}")
        for key in (subject_key(s, "profile"), alias_key(s)):
            if await store.get(key) is not None:
                found.append(f"key {key}")
        if await store.set_members(aliases_key(s)):
            found.append(f"alias set of {s}")
    return found


async def race(url: str, runs: int, seed: int = 21) -> tuple[list[str], list[dict[str, object]]]:
    """``runs`` runs on one store; every residue found and every erasure's answer."""
    rng = random.Random(seed)
    found: list[str] = []
    async with rig(url) as r:
        for n in range(runs):
            found += [f"run {n}: {what}" for what in await one_run(r, n, rng)]
        return found, r.answers
