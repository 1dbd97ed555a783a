"""deploy/: the systemd units, the compose file and the Containerfile, run here as far as this
machine can: the units' ExecStartPre and ExecStart commands and the compose services' commands
as local processes against a redis-server and the example ad server the test starts (the
container paths and service names mapped to local ones, nothing else changed), then the proxy
answers ready and personalises, the learner answers /health, and each stops cleanly on its
KillSignal. No container engine runs here: the image build itself is not exercised (its COPY
sources and its entry point are)."""

from __future__ import annotations

import asyncio
import configparser
import json
import os
import re
import shlex
import signal
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import REPO
from tests.proxy.support import wait_ready
from tests.support.servers import RedisServer, free_port, redis_server
from tests.support.timing import PATIENT_DEADLINES

DEPLOY = REPO / "deploy"
BIN = Path(sys.executable).parent
SECRETS = {  # what /etc/slotwise/secrets.env or compose's .env holds
    "SLOTWISE_TRACKING_SECRET": "deploy-test-click-key-0123456789",
    "SLOTWISE_ADMIN_TOKEN": "deploy-test-admin-token-0123456789",
}


def _unit(name: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "systemd" / name)
    return unit


def _local(argv: Sequence[str], ports: Mapping[str, str]) -> list[str]:
    """A unit's or container's command with the installed paths mapped to this checkout."""
    mapped = []
    for arg in argv:
        arg = arg.replace("/opt/slotwise/bin/slotwise", str(BIN / "slotwise"))
        arg = arg.replace("/etc/slotwise/slotwise.toml", str(DEPLOY / "slotwise.toml"))
        for old, new in ports.items():
            arg = arg.replace(old, new)
        mapped.append(arg)
    return mapped


def _environment(redis: RedisServer, upstream: str, tmp: Path) -> dict[str, str]:
    return dict(
        os.environ,
        **SECRETS,
        SLOTWISE_PLUGINS="builtins",
        SLOTWISE_STORE_URL=f"redis://127.0.0.1:{redis.port}/12",
        SLOTWISE_UPSTREAM_URL=upstream,
        SLOTWISE_PROXY_POLICIES=str(REPO / "examples" / "adserver" / "policies"),
        SLOTWISE_BANDIT_MODELS_DIR=str(tmp / "models"),
        SLOTWISE_PROXY_HOST="127.0.0.1",
        # deadlines a loaded machine meets: a fail-open answer carries no tracker
        **PATIENT_DEADLINES,
    )


@asynccontextmanager
async def _process(argv: Sequence[str], env: Mapping[str, str], log: Path) -> AsyncIterator[Any]:
    with log.open("w") as sink:
        # its own process group: granian's workers outlive a killed parent, so the group is
        # what gets ended (it holds only what this test started)
        process = await asyncio.create_subprocess_exec(
            *argv, env=dict(env), stdout=sink, stderr=sink, start_new_session=True
        )
    try:
        yield process
    finally:
        if process.returncode is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                pass
        _signal_group(process.pid, signal.SIGKILL)  # whatever of the group is left
        await process.wait()


def _signal_group(pid: int, how: signal.Signals) -> None:
    try:
        os.killpg(pid, how)
    except ProcessLookupError:  # the group has ended
        pass


@asynccontextmanager
async def _ad_server(tmp: Path) -> AsyncIterator[str]:
    port = free_port()
    argv = [sys.executable, "-m", "granian", "--interface", "asgi", "--port", str(port),
            "slotwise.examples.adserver.app:app"]  # fmt: skip
    async with _process(argv, os.environ, tmp / "adserver.log"):
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base) as client:
            for _ in range(300):
                try:
                    await client.get("/ads/home-top")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
        yield base


async def _healthy(url: str, attempts: int = 600) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(attempts):
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never answered 200")


async def _personalised(base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        await wait_ready(client, attempts=600)
        ad = (await client.get("/ads/home-top")).json()
        assert ad["creative"]["click_url"].startswith("https://ads.example.com/_sw/click?")


async def _stopped(process: Any, how: signal.Signals, within: float) -> int:
    process.send_signal(how)
    return int(await asyncio.wait_for(process.wait(), within))


@pytest.mark.slow
@pytest.mark.redis
async def test_the_systemd_units_commands_run(redis: RedisServer, tmp_path: Path) -> None:
    proxy, learner = _unit("slotwise-proxy.service"), _unit("slotwise-learner.service")
    for unit in (proxy, learner):
        assert unit["Service"]["Type"] == "exec" and unit["Service"]["Restart"] == "on-failure"
        assert unit["Service"]["EnvironmentFile"] == "-/etc/slotwise/secrets.env"
    port, learner_port = str(free_port()), str(free_port())
    async with _ad_server(tmp_path) as upstream:
        env = _environment(redis, upstream, tmp_path) | {"SLOTWISE_PROXY_PORT": port}
        check = _local(shlex.split(proxy["Service"]["ExecStartPre"]), {})
        result = await asyncio.create_subprocess_exec(
            *check, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(result.communicate(), 120)
        assert result.returncode == 0, err.decode()
        assert "the configuration is valid" in out.decode()
        serve = _local(shlex.split(proxy["Service"]["ExecStart"]), {})
        learn = _local(shlex.split(learner["Service"]["ExecStart"]), {":9464": f":{learner_port}"})
        async with (
            _process(serve, env, tmp_path / "proxy.log") as proxy_process,
            _process(learn, env, tmp_path / "learner.log") as learner_process,
        ):
            await _personalised(f"http://127.0.0.1:{port}")
            await _healthy(f"http://127.0.0.1:{learner_port}/health")
            kill = signal.Signals[proxy["Service"]["KillSignal"]]
            stop = float(proxy["Service"]["TimeoutStopSec"])
            assert await _stopped(proxy_process, kill, stop) == 0
            kill = signal.Signals[learner["Service"]["KillSignal"]]
            stop = float(learner["Service"]["TimeoutStopSec"])
            assert await _stopped(learner_process, kill, stop) == 0
    lines = (tmp_path / "learner.log").read_text().splitlines()
    assert any('"message": "stopped"' in line for line in lines)


def _compose() -> dict[str, Any]:
    text = (DEPLOY / "compose.yaml").read_text()
    # compose's ${NAME:?message} interpolation, from what .env would hold
    text = re.sub(r"\$\{(\w+)(?::\?[^}]*)?\}", lambda m: SECRETS[m.group(1)], text)
    return yaml.safe_load(text)  # type: ignore[no-any-return]


def _containerfile() -> list[tuple[str, str]]:
    lines = (DEPLOY / "Containerfile").read_text().replace("\\\n", " ").splitlines()
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_the_containerfile_copies_what_exists_and_runs_slotwise() -> None:
    instructions = _containerfile()
    for keyword, rest in instructions:
        if keyword == "COPY" and not rest.startswith("--from"):
            source = rest.split()[0]
            assert source == "." or (REPO / source).exists(), source
    entrypoint = [json.loads(rest) for keyword, rest in instructions if keyword == "ENTRYPOINT"]
    command = [json.loads(rest) for keyword, rest in instructions if keyword == "CMD"]
    assert entrypoint[-1] == ["slotwise"]
    assert command[-1] == ["serve", "--config", "/etc/slotwise/slotwise.toml"]
    # the compose file's proxy is the image's default command
    assert _compose()["services"]["proxy"]["command"] == command[-1]


@pytest.mark.slow
async def test_the_compose_services_commands_run(tmp_path: Path) -> None:
    services = _compose()["services"]
    entrypoint = next(json.loads(r) for k, r in _containerfile() if k == "ENTRYPOINT")
    redis_port, ad_port = free_port(), free_port()
    hosts = {"redis:6379": f"127.0.0.1:{redis_port}", "adserver:8000": f"127.0.0.1:{ad_port}"}
    async with AsyncExitStack() as stack:
        # redis: its command, on a local port
        redis_args = services["redis"]["command"]
        assert redis_args[:3] == ["redis-server", "--port", "6379"]
        stack.enter_context(redis_server(tmp_path / "redis", *redis_args[3:], port=redis_port))
        base_env = dict(
            os.environ,
            SLOTWISE_PLUGINS="builtins",
            **PATIENT_DEADLINES,
        )
        for name, value in services["proxy"]["environment"].items():
            for old, new in hosts.items():
                value = value.replace(old, new)
            base_env[name] = value
        base_env["SLOTWISE_PROXY_POLICIES"] = str(REPO / "examples" / "adserver" / "policies")
        # the ad server: its command as written, on a local port
        ad_command = _local(
            services["adserver"]["command"], {"8000": str(ad_port), "0.0.0.0": "127.0.0.1"}
        )
        assert "0.0.0.0" not in ad_command  # loopback only here
        assert services["adserver"]["entrypoint"] == []
        await stack.enter_async_context(
            _process([sys.executable, *ad_command[1:]], base_env, tmp_path / "adserver.log")
        )
        # the proxies: one process per replica, each as a container would run it
        replicas = services["proxy"]["deploy"]["replicas"]
        assert replicas >= 2
        proxies = []
        for i in range(replicas):
            port = free_port()
            env = base_env | {
                "SLOTWISE_PROXY_PORT": str(port),
                "SLOTWISE_PROXY_HOST": "127.0.0.1",
                "SLOTWISE_BANDIT_MODELS_DIR": str(tmp_path / f"models-{i}"),
            }
            argv = _local([str(BIN / entrypoint[0]), *services["proxy"]["command"]], {})
            process = await stack.enter_async_context(
                _process(argv, env, tmp_path / f"proxy-{i}.log")
            )
            proxies.append((process, f"http://127.0.0.1:{port}"))
        learner_port = free_port()
        learn = _local(
            [str(BIN / entrypoint[0]), *services["learner"]["command"]],
            {"0.0.0.0:9464": f"127.0.0.1:{learner_port}"},
        )
        learner_env = base_env | {"SLOTWISE_BANDIT_MODELS_DIR": str(tmp_path / "models-learner")}
        learner = await stack.enter_async_context(
            _process(learn, learner_env, tmp_path / "learner.log")
        )
        for _, base in proxies:
            async with httpx.AsyncClient(base_url=base) as client:
                await wait_ready(client, attempts=600)
                ad = (await client.get("/ads/home-top")).json()
                assert ad["creative"]["click_url"].startswith("http://localhost:8080/_sw/click?")
        await _healthy(f"http://127.0.0.1:{learner_port}/health")
        assert await _stopped(learner, signal.SIGTERM, 120) == 0
        for process, _ in proxies:
            assert await _stopped(process, signal.SIGTERM, 30) == 0
