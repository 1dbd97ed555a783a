"""`slotwise learn --serve` as a service, and models through the store: two `slotwise serve` on
one redis-server, each with its own models directory; the learner (its own directory too) logs
JSON lines, answers /health and /metrics, publishes what it learned from the proxies' clicks,
copies it to the store, and both proxies serve it without a shared file system; SIGTERM
publishes once more and ends it cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.proxy.support import SPRING_AD, Canned, serve_process, upstream_server
from tests.support.servers import RedisServer, free_port
from tests.support.timing import PATIENT_DEADLINES

POLICIES = REPO / "examples" / "adserver" / "policies"


def _proxy(
    upstream: str, store: str, models: Path, env: dict[str, str]
) -> AbstractAsyncContextManager[str]:
    args = ("--store", store, "--models", str(models))
    return serve_process(upstream, POLICIES, *args, env=env)


async def _until(check: object, seconds: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not await check():  # type: ignore[operator]
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.2)


@pytest.mark.slow
@pytest.mark.redis
async def test_the_learner_service_publishes_through_the_store_to_every_proxy(
    redis: RedisServer, tmp_path: Path
) -> None:
    store = f"redis://127.0.0.1:{redis.port}/11"
    env = dict(
        os.environ,
        SLOTWISE_PLUGINS="builtins",
        SLOTWISE_BANDIT_RELOAD_INTERVAL="0.2",
        SLOTWISE_BANDIT_MODELS_IN_STORE="true",
        SLOTWISE_LOG_FORMAT="json",
        # deadlines a loaded machine meets: a fail-open answer carries no click link
        **PATIENT_DEADLINES,
    )
    routes = {
        "/ad": Canned(200, [("Content-Type", "application/json")], json.dumps(SPRING_AD).encode())
    }
    learner_port = free_port()
    log_file = tmp_path / "learner.log"
    async with upstream_server(routes) as upstream:
        async with (
            _proxy(upstream.url, store, tmp_path / "models-a", env) as first,
            _proxy(upstream.url, store, tmp_path / "models-b", env) as second,
        ):
            # the traffic first (on the first proxy only) and past its join window: the learner's
            # first publish holds every example, however slow the machine (were it learning
            # while the traffic ran, a v2 could follow v1 on a slow one)
            async with httpx.AsyncClient() as client:
                clicks = 0
                for i in range(40):
                    ad = await client.get(f"{first}/ad", headers={"cookie": f"sw_uid=u{i}"})
                    link = ad.json()["creative"]["click_url"]
                    if link.startswith("/_sw/click") and i % 2:
                        assert (await client.get(first + link)).status_code == 302
                        clicks += 1
                assert clicks > 5
            await asyncio.sleep(0.6)
            with log_file.open("w") as sink:
                learner = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "slotwise", "learn", "--policies", str(POLICIES),
                    "--store", store, "--models", str(tmp_path / "models-learner"),
                    "--window", "0.5", "--publish-every", "1",
                    "--serve", f"127.0.0.1:{learner_port}",
                    env=env, stdout=sink, stderr=sink,
                )  # fmt: skip
            try:
                service = f"http://127.0.0.1:{learner_port}"
                async with httpx.AsyncClient() as client:

                    async def healthy() -> bool:
                        try:
                            return (await client.get(f"{service}/health")).status_code == 200
                        except httpx.TransportError:
                            return False

                    await _until(healthy)

                    async def served_everywhere() -> bool:
                        for base in (first, second):
                            metrics = (await client.get(f"{base}/_sw/metrics")).text
                            if 'campaign="spring_sale",version="v1"' not in metrics:
                                return False
                        return True

                    await _until(served_everywhere)  # no shared directory: through redis
                    assert (tmp_path / "models-b" / "spring_sale" / "CURRENT").read_text() == "1\n"
                    metrics = (await client.get(f"{service}/metrics")).text
                    assert "slotwise_learner_up 1" in metrics
                    examples = next(
                        line for line in metrics.splitlines()
                        if line.startswith("slotwise_learner_examples_total ")
                    )  # fmt: skip
                    assert int(examples.split()[1]) >= 20
                    assert "process_resident_memory_bytes{" in metrics
                learner.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(learner.wait(), 60) == 0
            finally:
                if learner.returncode is None:
                    learner.kill()
                    await learner.wait()
    lines = [json.loads(line) for line in log_file.read_text().splitlines() if line.startswith("{")]
    messages = [line["message"] for line in lines if line["logger"] == "slotwise.learner"]
    assert any(m.startswith("published spring_sale v1") for m in messages), messages
    assert "model of spring_sale copied to the store" in [
        line["message"] for line in lines if line["logger"] == "slotwise.learner"
    ]
    assert messages[-2:] == ["stopping: publishing once more", "stopped"]
