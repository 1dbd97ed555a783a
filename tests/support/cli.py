"""Run the real ``slotwise`` command line as a subprocess from an async test."""

from __future__ import annotations

import asyncio
import sys


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
