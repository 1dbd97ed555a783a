"""Stopping background tasks reliably."""

from __future__ import annotations

import asyncio
from typing import Any


async def stop_task(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait until it has ended.

    On Python 3.11 ``asyncio.wait_for`` can swallow a cancellation that arrives just as its
    inner future completes, so one ``cancel()`` is not always enough: cancel until done.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.1)
    if not task.cancelled() and task.exception() is not None:
        return  # a crashed background loop was already logged by the loop itself
