"""`slotwise serve`: refuses bad starts clearly, and really serves on granian."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from slotwise.proxy.cli import main
from tests.conftest import REPO
from tests.proxy.support import Canned, alive, children, served, upstream_server
from tests.support.servers import free_port


def test_bad_configuration_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "slotwise.toml"
    config.write_text('[upstream]\nurl = "ftp://nope"\n[proxy]\nprot = 1\n')
    assert main(["serve", "--config", str(config), "--policies", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'proxy.prot' (did you mean 'proxy.port'?)" in err
    assert "must start with http:// or https://" in err
    assert "Traceback" not in err


def test_missing_upstream_or_policies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--policies", str(tmp_path)]) == 2
    assert "no upstream" in capsys.readouterr().err
    missing = tmp_path / "absent"
    assert main(["serve", "--upstream", "http://127.0.0.1:1", "--policies", str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_bad_store_url_stops_the_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # refused before a worker starts, with the option named, not as a failed lifespan
    argv = ["serve", "--upstream", "http://127.0.0.1:1", "--policies", str(tmp_path)]
    assert main([*argv, "--store", "memory://?max_log_entries=lots"]) == 2
    err = capsys.readouterr().err
    assert "--store / store.url:" in err and "max_log_entries must be a whole number" in err
    assert main([*argv, "--store", "postgres://x"]) == 2
    assert "must start with memory://" in capsys.readouterr().err


def test_what_would_fail_every_worker_stops_the_start_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # an unreachable store, a port in use, an address that is not one: named once, before any
    # worker starts (each worker used to fail on it with its own backtrace)
    argv = ["serve", "--upstream", "http://127.0.0.1:1", "--policies", str(tmp_path)]
    closed = free_port()
    assert main([*argv, "--port", str(free_port()), "--store", f"redis://127.0.0.1:{closed}"]) == 1
    assert "the store cannot be used (--store / store.url): cannot reach redis" in (
        capsys.readouterr().err
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main([*argv, "--port", str(taken.getsockname()[1])]) == 1
        assert "Address already in use (--host / --port" in capsys.readouterr().err
    assert main([*argv, "--port", "99999"]) == 2
    assert "--port: must be at most 65535, not 99999" in capsys.readouterr().err
    assert main([*argv, "--host", "nonexistent.invalid"]) == 2
    assert "'nonexistent.invalid' is not an IP address" in capsys.readouterr().err


def test_broken_policies_stop_the_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.sw").write_text('policy "x" version 1\ncampaign {\n')
    assert main(["serve", "--upstream", "http://127.0.0.1:1", "--policies", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "do not compile" in err and "bad.sw:" in err


@pytest.mark.slow
@pytest.mark.parametrize("pure", ["0", "1"], ids=["as-built", "pure"])
async def test_serves_on_granian(tmp_path: Path, pure: str) -> None:
    # "pure": the fallback every machine without a C compiler runs (slotwise/native.py)
    routes = {
        "/ad": Canned(
            200,
            [("Content-Type", "application/json"), ("Server", "adserver"),
             ("Date", "Sun, 22 Nov 2026 05:00:00 GMT")],
            b'{"campaign_id": "none"}',
        )
    }  # fmt: skip
    policies = REPO / "examples" / "adserver" / "policies"
    async with (
        upstream_server(routes) as upstream,
        served(upstream.url, policies, env={"SLOTWISE_PURE": pure}) as (_, base),
        httpx.AsyncClient(base_url=base) as client,
    ):
        response = await client.get("/ad")
        assert response.status_code == 200
        assert response.content == b'{"campaign_id": "none"}'
        assert response.headers.get_list("server") == ["adserver"]
        assert len(response.headers.get_list("date")) == 1
        metrics = (await client.get("/_sw/metrics")).text
        assert 'slotwise_passthrough_total{reason="no_campaign_applies"} 1' in metrics


@asynccontextmanager
async def _two_workers(
    upstream: str, **env: str
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str, set[int]]]:
    """`slotwise serve --workers 2` (the example policies) once ready and both workers run: the
    server's process, its base URL and its workers; a worker left behind at the end (a failed
    test) is killed."""
    policies = REPO / "examples" / "adserver" / "policies"
    workers: set[int] = set()
    try:
        async with served(upstream, policies, "--workers", "2", env=env) as (process, base):
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while len(workers := children(process.pid)) < 2:
                assert loop.time() < deadline, f"two workers never appeared: {workers}"
                await asyncio.sleep(0.1)
            yield process, base, workers
    finally:
        for worker in workers:
            if alive(worker):
                os.kill(worker, 9)


@pytest.mark.slow
async def test_a_killed_worker_is_replaced_while_the_others_answer(tmp_path: Path) -> None:
    routes = {"/ad": Canned(200, [("Content-Type", "application/json")], b'{"campaign_id": "x"}')}
    async with upstream_server(routes) as upstream, _two_workers(upstream.url) as served:
        process, base, workers = served
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        victim = min(workers)
        os.kill(victim, 9)
        # connections queued on a worker's own socket while it dies are reset, by the
        # kernel (without net.ipv4.tcp_migrate_req: docs/proxy.md), so requests start
        # once its sockets are closed: exited, a zombie or gone
        while alive(victim):
            assert loop.time() < deadline + 5, f"worker {victim} did not die"
            await asyncio.sleep(0.01)
        answered = 0
        deadline = loop.time() + 10
        while not (replaced := children(process.pid) - workers):
            assert loop.time() < deadline, "no new worker within 10 s"
            assert process.returncode is None, "the server exited"
            # a fresh connection each time: the surviving worker takes it
            async with httpx.AsyncClient(base_url=base) as fresh:
                response = await fresh.get("/ad", timeout=20)
            assert response.status_code == 200
            answered += 1
            await asyncio.sleep(0.05)
        assert victim not in children(process.pid) and replaced
        # a connection queued for the new worker waits until its start-up is done (slow
        # on a loaded machine), hence the long timeouts here
        for _ in range(10):
            async with httpx.AsyncClient(base_url=base) as fresh:
                assert (await fresh.get("/ad", timeout=20)).status_code == 200
        assert process.returncode is None


def test_serving_without_a_public_url_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the broken policy stops the start after the warning: nothing is served here
    (tmp_path / "bad.sw").write_text('policy "x" version 1\ncampaign {\n')
    argv = ["serve", "--upstream", "http://127.0.0.1:1", "--policies", str(tmp_path)]
    assert main(argv) == 1
    warned = [
        json.loads(line) for line in capsys.readouterr().err.splitlines() if "public_url" in line
    ]
    assert warned and warned[0]["level"] == "warning"  # not a terminal: a JSON log line
    assert warned[0]["message"].startswith("tracking.public_url is not set")
    config = tmp_path / "slotwise.toml"
    config.write_text('[tracking]\npublic_url = "https://ads.example"\n')
    assert main([*argv, "--config", str(config)]) == 1
    assert "public_url is not set" not in capsys.readouterr().err


def test_check_config_checks_everything_a_start_would_then_exits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["serve", "--upstream", "http://127.0.0.1:1", "--policies", str(tmp_path)]
    port = free_port()
    assert main([*argv, "--port", str(port), "--check-config"]) == 0
    assert "the configuration is valid" in capsys.readouterr().out
    with socket.socket() as taken:  # what would stop the start stops the check the same way
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main([*argv, "--port", str(taken.getsockname()[1]), "--check-config"]) == 1
    assert "Address already in use" in capsys.readouterr().err
    (tmp_path / "bad.sw").write_text('policy "x" version 1\ncampaign {\n')
    assert main([*argv, "--port", str(port), "--check-config"]) == 1
    assert "do not compile" in capsys.readouterr().err


@pytest.mark.slow
async def test_a_worker_that_does_not_stop_is_killed_and_the_server_exits() -> None:
    # a worker that cannot handle its SIGTERM (here stopped; on a loaded machine one that
    # missed it while starting) is killed after proxy.stop_timeout: the server always exits
    routes = {"/ad": Canned(200, [("Content-Type", "application/json")], b"{}")}
    async with (
        upstream_server(routes) as upstream,
        _two_workers(upstream.url, SLOTWISE_PROXY_STOP_TIMEOUT="1") as (process, _, workers),
    ):
        os.kill(min(workers), signal.SIGSTOP)
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)  # not held up by the stuck worker
        assert not any(alive(worker) for worker in workers)
