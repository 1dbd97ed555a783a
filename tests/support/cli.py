"""Run the real ``slotwise`` command line as a subprocess from an async test: a command to its
end, or ``slotwise serve`` while the test talks to it."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from tests.proxy.support import wait_ready
from tests.support.servers import free_port
from tests.support.timing import PATIENT_DEADLINES


async def run_slotwise(env: dict[str, str], *argv: str, timeout: float = 120) -> str:
    """``python -m slotwise ARGV`` with ``env``; its standard output, asserting exit 0 (the
    standard error is the assertion's message)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "slotwise", *argv, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode == 0, err.decode()
    return out.decode()


@asynccontextmanager
async def slotwise_serve(env: dict[str, str], *argv: str) -> AsyncIterator[str]:
    """``slotwise serve ARGV`` as a subprocess on a free loopback port, once it answers ready;
    yields its base URL and terminates it afterwards. The decision and signals deadlines are
    2 s unless ``env`` sets them."""
    env = {**PATIENT_DEADLINES, **env}  # the caller's, deadlines included, win
    port = free_port()
    proxy = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "slotwise", "serve", *argv, "--port", str(port), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            await wait_ready(client)
        yield base
    finally:
        proxy.terminate()
        await asyncio.wait_for(proxy.wait(), 10)
