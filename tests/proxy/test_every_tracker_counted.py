"""Issue 15's acceptance: every tracker of 2,000 served responses fired, 100% stored and joined.

Real processes on loopback: the example ad server (examples/adserver under granian) and
`slotwise serve` in front of it with a SQLite store and the demo's campaigns held out at 20%
(so hundreds of responses are controls). 2,000 ad requests (JSON creatives, OpenRTB bids with
a native and a video impression, VAST pre-rolls) go through the proxy; every tracker of every
response (impression pixels, click pixels, signed click redirects, found in the format's own
fields) is fired. Then the store must hold every decision, personalised and control alike,
every impression and click as an event of its decision, and `slotwise export` plus the
learner's reward join must join every click to its decision: nothing lost.

The figures are printed (run with ``-s``) and recorded in docs/learning.md ("Every tracker
counted"): ``.venv/bin/pytest tests/proxy/test_every_tracker_counted.py -m slow -s``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from examples.adserver.creatives import NATIVE_REQUEST_ASSETS
from slotwise.proxy.decision_log import DecisionRecord
from slotwise.proxy.learn.join import join_log
from slotwise.proxy.learn.log import RewardRecord, decode
from slotwise.proxy.state import open_store
from slotwise.types import DEFAULT_GOAL
from tests.conftest import REPO
from tests.proxy.support import wait_ready
from tests.support.servers import free_port
from tests.support.timing import PATIENT_DEADLINES

RESPONSES = 2000
CONCURRENCY = 8
HOLDOUT = "holdout 20%"
_VAST_TRACKERS = ("Impression", "ClickTracking")


def _policy() -> str:
    # the demo's campaigns, each with a 20% control group
    text = (REPO / "examples" / "adserver" / "policies" / "demo.sw").read_text(encoding="utf-8")
    text = text.replace("holdout 10%", HOLDOUT)
    text = text.replace("  optimize clicks\n}", f"  optimize clicks\n  {HOLDOUT}\n}}")
    assert text.count(HOLDOUT) == 3
    return text


def _request(i: int) -> tuple[str, str, dict[str, str], bytes]:
    """The i-th ad request: (method, path, headers, body); users recur, consent varies."""
    consent = "personal" if i % 3 else "denied"
    headers = {"cookie": f"sw_uid=u{i % 400}; sw_consent={consent}"}
    kind = i % 5
    if kind in (0, 1, 2):
        return "GET", ("/ads/home-top", "/ads/article-side")[kind % 2], headers, b""
    if kind == 3:
        native = json.dumps({"ver": "1.2", "assets": NATIVE_REQUEST_ASSETS})
        bid_request = {
            "id": f"req-{i}",
            "imp": [
                {"id": "1", "native": {"ver": "1.2", "request": native}},
                {"id": "2", "video": {"mimes": ["video/mp4"], "w": 640, "h": 360}},
            ],
        }
        headers["content-type"] = "application/json"
        return "POST", "/openrtb/bid", headers, json.dumps(bid_request).encode()
    return "GET", "/vast/preroll", headers, b""


def _trackers(base: str, content_type: str, body: bytes) -> list[str]:
    """Every proxy URL in the response's tracker fields (JSON strings, OpenRTB adm markup,
    VAST Impression and ClickTracking elements)."""
    if "xml" in content_type:
        return list(_vast_trackers(base, body.decode("utf-8")))
    return list(_json_trackers(base, json.loads(body)))


def _json_trackers(base: str, value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _json_trackers(base, item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_trackers(base, item)
    elif isinstance(value, str):
        if value.startswith(base):
            yield value
        elif value.startswith("{"):  # native markup in a bid's adm
            yield from _json_trackers(base, json.loads(value))
        elif value.lstrip().startswith("<"):  # VAST in a bid's adm
            yield from _vast_trackers(base, value)


def _vast_trackers(base: str, markup: str) -> Iterator[str]:
    for element in ET.fromstring(markup.encode()).iter():
        if element.tag.rpartition("}")[2] in _VAST_TRACKERS:
            url = (element.text or "").strip()
            if url.startswith(base):
                yield url


def _decision_of(url: str) -> tuple[str, str]:
    """(kind, decision id) of a tracker URL: impression or click pixel, click redirect."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if parts.path == "/_sw/click":
        return "click", query["d"][0]
    assert parts.path == "/_sw/px", url
    return query["t"][0], query["did"][0]


def _events(fired: Counter[str]) -> Counter[str]:
    """The events a decision's fired trackers are: an impression, and one click however many
    of its click trackers fired (a JSON ad's click pixel and its click redirect are the same
    click, event id ``ID.click``, stored once)."""
    clicks = 1 if fired["click"] + fired["redirect"] else 0
    return Counter(impression=fired["impression"], click=clicks)


@asynccontextmanager
async def _processes(tmp: Path, store: str) -> AsyncIterator[str]:
    """The example ad server and `slotwise serve` in front of it; the proxy's base URL."""
    policies = tmp / "policies"
    policies.mkdir()
    (policies / "demo.sw").write_text(_policy(), encoding="utf-8")
    ad_port, proxy_port = free_port(), free_port()
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        SLOTWISE_PLUGINS="builtins",
        SLOTWISE_TRACKING_PUBLIC_URL=f"http://127.0.0.1:{proxy_port}",
        # this test counts trackers, not speed: on a loaded machine a 10 ms engine deadline
        # fails some responses open (served unchanged, without trackers), which is correct
        # behaviour but not what is measured here
        **PATIENT_DEADLINES,
    )
    argvs = [
        [sys.executable, "-m", "granian", "--interface", "asgi", "--port", str(ad_port),
         "--log-level", "warning", "examples.adserver.app:app"],
        [sys.executable, "-m", "slotwise", "serve", "--upstream", f"http://127.0.0.1:{ad_port}",
         "--policies", str(policies), "--port", str(proxy_port), "--store", store],
    ]  # fmt: skip
    logs = [(tmp / name).open("wb") for name in ("adserver.log", "proxy.log")]
    started = [
        subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        for argv, log in zip(argvs, logs, strict=True)
    ]
    try:
        yield f"http://127.0.0.1:{proxy_port}"
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in logs:
            log.close()


async def _serve_and_fire(client: httpx.AsyncClient, base: str) -> dict[str, Counter[str]]:
    """Send the ad requests, fire every tracker; per decision id, the trackers fired by kind."""
    fired: dict[str, Counter[str]] = {}
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        method, path, headers, body = _request(i)
        async with gate:
            response = await client.request(method, path, headers=headers, content=body)
            assert response.status_code == 200, (path, response.status_code)
            trackers = _trackers(base, response.headers["content-type"], response.content)
            assert trackers, f"request {i} ({path}): a response without trackers"
            for url in trackers:
                kind, decision_id = _decision_of(url)
                tracked = await client.get(url)
                if urlsplit(url).path == "/_sw/click":
                    assert tracked.status_code == 302, (url, tracked.text)
                    kind = "redirect"
                else:
                    assert tracked.status_code == 200, (url, tracked.text)
                fired.setdefault(decision_id, Counter())[kind] += 1

    await asyncio.gather(*(one(i) for i in range(RESPONSES)))
    return fired


async def _stored(store_url: str, decisions: int, events: int) -> tuple[list[bytes], list[bytes]]:
    """The store's decisions and events logs, once both are complete (30 s at most)."""
    store = open_store(store_url)
    await store.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            logs = []
            for name in ("decisions", "events"):
                entries, after = [], "0"
                while page := await store.log_read(name, after=after, count=1000):
                    entries += [entry.data for entry in page]
                    after = page[-1].position
                logs.append(entries)
            if len(logs[0]) >= decisions and len(logs[1]) >= events:
                return logs[0], logs[1]
            if time.monotonic() > deadline:
                return logs[0], logs[1]  # the assertions say what is missing
            await asyncio.sleep(0.2)
    finally:
        await store.close()


def _slotwise(*argv: str) -> bytes:
    done = subprocess.run(
        [sys.executable, "-m", "slotwise", *argv],
        cwd=REPO, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def _export(kind: str, store: str, out: Path) -> list[Any]:
    _slotwise("export", kind, "--store", store, "--output", str(out))
    lines = out.read_bytes().splitlines()
    return [decode(line, f"{kind} export") for line in lines if line]


@pytest.mark.slow
async def test_every_tracker_of_2000_responses_is_stored_and_joined(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/state.db"
    started = time.monotonic()
    async with _processes(tmp_path, store) as base:
        limits = httpx.Limits(max_connections=CONCURRENCY)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
            await wait_ready(client)
            fired = await asyncio.wait_for(_serve_and_fire(client, base), 600)
            wanted = {i: _events(kinds) for i, kinds in fired.items()}
            events = sum(sum(kinds.values()) for kinds in wanted.values())
            decisions_log, events_log = await _stored(store, len(fired), events)

    # every decision stored, personalised and control, and each was tracked in its response
    decisions = [decode(d, "decisions") for d in decisions_log]
    records = {r.id: r for r in decisions if isinstance(r, DecisionRecord)}
    assert len(records) == len(decisions_log) == len(fired)
    assert set(records) == set(fired)
    controls = {i for i, r in records.items() if r.holdout}
    assert all(not records[i].slots and records[i].eligible for i in controls)
    assert len(controls) >= 200 and len(records) - len(controls) >= 1000
    assert all(r.fail_open is None for r in records.values())
    assert all(kinds["impression"] >= 1 and kinds["click"] >= 1 for kinds in fired.values())

    # every fired tracker is stored as an event of its decision
    stored: dict[str, Counter[str]] = {}
    for data in events_log:
        event = json.loads(data)["event"]
        stored.setdefault(event["decision_id"], Counter())[event["type"]] += 1
    assert stored == wanted and len(events_log) == events

    # the export (what `evaluate` reads) and the learner's join: every click joined
    logs = tmp_path / "decisions.jsonl", tmp_path / "events.jsonl"
    exported = _export("decisions", store, logs[0]) + _export("events", store, logs[1])
    rewards = [r for r in exported if isinstance(r, RewardRecord)]
    assert len(rewards) == sum(c["click"] for c in wanted.values())
    joined, stats = join_log(exported, lambda campaign: DEFAULT_GOAL, window=3600.0)
    assert stats.unmatched == 0 and stats.late == 0 and stats.rewards == len(rewards)
    assert len(joined) == len(records)
    assert all(j.outcome.clicks == wanted[j.decision.id]["click"] for j in joined)
    joined_controls = sum(1 for j in joined if j.decision.holdout and j.outcome.clicks > 0)
    assert joined_controls == len(controls)

    arms = Counter((r.campaign, r.holdout) for r in records.values())
    # offline evaluation sees the control arm: every control decision was clicked, so the
    # upstream experience's self-normalised estimate is exactly 1 (0 if control went untracked)
    report = json.loads(
        _slotwise("evaluate", *map(str, logs), "--campaign", "spring_sale",
                  "--candidate", "upstream", "--format", "json")
    )  # fmt: skip
    (upstream,) = report["candidates"]
    assert report["decisions"] == arms["spring_sale", False] + arms["spring_sale", True]
    assert report["unmatched_rewards"] == 0 and report["logged"]["value"] == 1.0
    assert upstream["snips"]["value"] == pytest.approx(1.0)
    assert upstream["support"] == pytest.approx(arms["spring_sale", True] / report["decisions"])

    shots = sum(sum(kinds.values()) for kinds in fired.values())
    impressions = sum(c["impression"] for c in wanted.values())
    assert impressions == len(records)
    clicks = sum(c["click"] for c in wanted.values())
    control_events = sum(sum(wanted[i].values()) for i in controls)
    print(
        f"\n{RESPONSES} responses, {len(records)} decisions ({len(controls)} control; "
        f"(campaign, control): {dict(sorted(arms.items()))}), {shots} trackers fired, "
        f"{impressions} impressions and {clicks} clicks stored "
        f"({control_events} events of control decisions), {stats.rewards} rewards exported, "
        f"{stats.joined} decisions joined, {stats.unmatched} unmatched, "
        f"{time.monotonic() - started:.0f} s"
    )
