"""The whole loop with real processes: proxy decides and logs, learner learns, proxy reloads.

`slotwise serve` (SQLite store, model store) logs decisions and signed clicks; `slotwise learn
--once` joins the clicks to their decisions and publishes a model; the running proxy picks it
up without a restart and serves from it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.proxy.support import SPRING_AD, Canned, upstream_server, wait_ready
from tests.support.servers import free_port
from tests.support.timing import PATIENT_DEADLINES

POLICIES = REPO / "examples" / "adserver" / "policies"
AD = SPRING_AD


@pytest.mark.slow
async def test_serve_and_learn_processes_close_the_loop(tmp_path: Path) -> None:
    store, models = f"sqlite:///{tmp_path}/state.db", tmp_path / "models"
    routes = {"/ad": Canned(200, [("Content-Type", "application/json")], json.dumps(AD).encode())}
    port = free_port()
    env = dict(
        os.environ,
        SLOTWISE_PLUGINS="builtins",
        SLOTWISE_BANDIT_RELOAD_INTERVAL="0.2",
        SLOTWISE_TRACKING_PUBLIC_URL=f"http://127.0.0.1:{port}",
        **PATIENT_DEADLINES,
    )
    async with upstream_server(routes) as upstream:
        proxy = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "slotwise", "serve", "--upstream", upstream.url,
            "--policies", str(POLICIES), "--port", str(port), "--store", store,
            "--models", str(models), env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                await wait_ready(client)
                assert 'campaign="spring_sale",version="v0"' in await _metrics(client)
                clicks = 0
                for i in range(40):
                    ad = (await client.get("/ad", headers={"cookie": f"sw_uid=u{i}"})).json()
                    click_url = ad["creative"]["click_url"]
                    if click_url.startswith(str(client.base_url)) and i % 2:
                        click = await client.get(click_url)
                        assert click.status_code == 302
                        clicks += 1
                assert clicks > 5
                await asyncio.sleep(0.6)  # past the reward window below
                learn = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "slotwise", "learn", "--policies", str(POLICIES),
                    "--store", store, "--models", str(models), "--window", "0.5", "--once",
                    env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                )  # fmt: skip
                out, err = await asyncio.wait_for(learn.communicate(), 60)
                assert learn.returncode == 0, err.decode()
                assert "spring_sale: published v1" in out.decode(), out.decode()
                for _ in range(100):  # the proxy reloads within its interval
                    if 'campaign="spring_sale",version="v1"' in await _metrics(client):
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError("the proxy did not reload the published model")
                assert (await client.get("/ad")).status_code == 200
        finally:
            proxy.terminate()
            await asyncio.wait_for(proxy.wait(), 10)


async def _metrics(client: httpx.AsyncClient) -> str:
    return (await client.get("/_sw/metrics")).text
