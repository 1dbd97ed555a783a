"""The log archive as an operator meets it (issue 22): `slotwise serve --workers 2` on Redis
with ``archive=``; the retention pass moves the events out of Redis, `slotwise export events`
still exports every one of them (the clicks' rewards), and an erasure through the admin API
removes the user's events from the archive's files as well."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import redis.asyncio as aioredis

from slotwise.proxy.state import archive as archive_module
from tests.proxy.faults.support import _stop, upstream
from tests.proxy.support import wait_ready
from tests.support.servers import RedisServer, free_port

TOKEN = "archive-served-token-0123456789"


def _export(store_url: str) -> list[dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-m", "slotwise", "export", "events", "--store", store_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


async def test_served_events_are_archived_exported_and_erased(
    redis: RedisServer, tmp_path: Path
) -> None:
    raw = aioredis.Redis(port=redis.port)
    await raw.flushall()
    archive = tmp_path / "archive"
    store_url = f"{redis.url}?archive={archive}&archive_after=0"
    (tmp_path / "policies").mkdir()
    port = free_port()
    env = dict(
        os.environ,
        SLOTWISE_ADMIN_TOKEN=TOKEN,
        SLOTWISE_EVENTS_RETENTION_INTERVAL="0.3",
    )
    async with upstream() as up:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "slotwise", "serve", "--upstream", up.url,
            "--policies", str(tmp_path / "policies"), "--port", str(port), "--workers", "2",
            "--store", store_url, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as c:
                await wait_ready(c, attempts=600)
                for user in ("u1", "u2"):
                    body = {
                        "consent": "personal",
                        "events": [
                            {
                                "type": "click",
                                "id": f"{user}-{n}",
                                "user_id": user,
                                "decision_id": f"d-{user}-{n}",
                            }
                            for n in range(15)
                        ],
                    }
                    answer = await c.post("/_sw/events", json=body)
                    assert answer.status_code == 200, answer.text
                for _ in range(200):  # a retention pass of either worker moves them
                    if await raw.xlen("log:{events}") == 0 and list(archive.glob("events/*.seg")):
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError("the events never left redis for the archive")
                exported = _export(store_url)
                assert sorted(str(e["decision_id"]) for e in exported) == sorted(
                    f"d-{u}-{n}" for u in ("u1", "u2") for n in range(15)
                )
                erased = await c.delete(
                    "/_sw/admin/users/u1", headers={"Authorization": f"Bearer {TOKEN}"}
                )
                assert erased.status_code == 200, erased.text
                assert erased.json()["events"] == 15
            assert {str(e["decision_id"])[:5] for e in _export(store_url)} == {"d-u2-"}
            for segment in archive.glob("events/*.seg"):
                assert all(row[2] != "u1" for row in archive_module._load(str(segment)))
        finally:
            await _stop(process)
            await raw.flushall()
            await raw.aclose()
