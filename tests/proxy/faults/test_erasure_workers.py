"""Erasure across workers (issue 21, "caches emptied only in the worker that answers the
erasure"): `slotwise serve --workers 2` on one SQLite store, with a personal provider whose
answers each worker caches for 300 s. ``DELETE /_sw/admin/users/{id}`` is answered by one
worker; afterwards no request, on either worker, is personalised with what the erased user's
cached (or fresh) personal signals say, and the other worker's cache is emptied too (its next
request for another cached user fetches again)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from pathlib import Path

import httpx

from tests.proxy.faults.support import _stop, upstream
from tests.proxy.support import wait_ready
from tests.support.servers import free_port
from tests.support.timing import PATIENT_DEADLINES

TOKEN = "erasure-workers-token-0123456789"
POLICY = """policy "loyalty" version 1

campaign spring_sale {
  applies when ad.campaign_id == "cmp-spring"
  slot headline at "$.creative.headline" {
    variant gold "Gold members first"
    variant plain "Spring for everyone"
  }
  rule "gold tier" when loyalty.tier == "gold" then pin headline gold
  rule "others" when not loyalty.tier == "gold" then exclude headline gold
  optimize clicks
}
"""
# A personal provider as a third party would ship it: every fetch is logged with the worker's
# pid, and its answers are cached per user id for 300 s
PLUGIN = """import json, os
from pathlib import Path
from typing import Any
from slotwise.plugins.provider import Provider, signal
from slotwise.types import SignalType

class Loyalty(Provider[Any]):
    name = "loyalty"
    personal = True
    ttl = 300.0
    signals = (signal("loyalty.tier", SignalType.STRING, "the user's loyalty tier"),)

    def cache_key(self, request):
        return request.user_id

    async def fetch(self, request):
        with open(os.environ["LOYALTY_LOG"], "a") as log:
            log.write(f"{os.getpid()} {request.user_id}\\n")
        tiers = json.loads(Path(os.environ["LOYALTY_TIERS"]).read_text())
        tier = tiers.get(request.user_id)
        return {"loyalty.tier": tier} if tier else {}
"""


def _install(root: Path) -> None:
    info = root / "slotwise_loyalty-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: slotwise-loyalty\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[slotwise.signals]\nloyalty = slotwise_loyalty:Loyalty\n"
    )
    (root / "slotwise_loyalty.py").write_text(PLUGIN)


async def _headline(port: int, user: str) -> str:
    """One request on a new connection (the kernel hands those to either worker)."""
    cookie = f"sw_consent=personal; sw_uid={user}"
    async with httpx.AsyncClient(timeout=20) as client:
        answer = await client.get(f"http://127.0.0.1:{port}/ad", headers={"cookie": cookie})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["creative"]["headline"])


def _fetches(log: Path) -> Counter[tuple[int, str]]:
    lines = log.read_text().split() if log.exists() else []
    return Counter((int(pid), user) for pid, user in zip(lines[::2], lines[1::2], strict=True))


async def _until_both_workers_fetched(port: int, log: Path, user: str) -> set[int]:
    """Requests for ``user`` until each of the two workers has fetched (and cached) theirs."""
    for _ in range(400):
        assert await _headline(port, user) == "Gold members first"
        pids = {pid for pid, who in _fetches(log) if who == user}
        if len(pids) == 2:
            return pids
    raise AssertionError("the requests never reached both workers")


async def test_an_erasure_empties_every_workers_cache(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    _install(plugin)
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "loyalty.sw").write_text(POLICY)
    tiers, log = tmp_path / "tiers.json", tmp_path / "fetches.log"
    tiers.write_text(json.dumps({"u-erased": "gold", "u-kept": "gold"}))
    port = free_port()
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(plugin), os.environ.get("PYTHONPATH", "")]),
        SLOTWISE_PLUGINS="builtins,loyalty",
        SLOTWISE_ADMIN_TOKEN=TOKEN,
        SLOTWISE_TRACKING_PUBLIC_URL="http://shop.test",
        **PATIENT_DEADLINES,
        LOYALTY_TIERS=str(tiers),
        LOYALTY_LOG=str(log),
    )
    async with upstream() as up:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "slotwise", "serve", "--upstream", up.url,
            "--policies", str(tmp_path / "policies"), "--port", str(port), "--workers", "2",
            "--store", f"sqlite://{tmp_path}/state.db?timeout=2", env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                await wait_ready(client, attempts=600)
            workers = await _until_both_workers_fetched(port, log, "u-erased")
            assert await _until_both_workers_fetched(port, log, "u-kept") == workers
            before = _fetches(log)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                erased = await client.delete(
                    "/_sw/admin/users/u-erased", headers={"Authorization": f"Bearer {TOKEN}"}
                )
            assert erased.status_code == 200, erased.text
            # at once, on both workers: the erased user's cached tier is never used (the
            # plugin's own backend still says gold: their fresh signals are not used either)
            for _ in range(40):
                assert await _headline(port, "u-erased") == "Spring for everyone"
            # within the epoch's second, the other worker's cache is empty as well: a user
            # it had cached is fetched again by both workers
            await asyncio.sleep(2.5)
            for _ in range(400):
                assert await _headline(port, "u-kept") == "Gold members first"
                again = _fetches(log) - before
                if {pid for pid, who in again if who == "u-kept"} == workers:
                    break
            else:
                raise AssertionError(f"a worker kept its cache after the erasure: {again}")
        finally:
            await _stop(process)
