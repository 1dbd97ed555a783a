"""Keep a provider's ``SystemExit``, ``KeyboardInterrupt`` or stray cancellation in its box.

asyncio re-raises ``SystemExit`` and ``KeyboardInterrupt`` out of the event loop when a task's
coroutine raises them, which stops the whole worker; a ``CancelledError`` that a provider raises
on its own would read as our deadline. :func:`contained` turns all three into
:class:`ProviderCrashed`, an ordinary exception that the caller counts and reports like any
other, while a cancellation that we asked for (a deadline, a shutdown) still propagates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


class ProviderCrashed(Exception):
    """A provider raised ``SystemExit``, ``KeyboardInterrupt`` or ``CancelledError`` itself."""


async def contained(step: Awaitable[T]) -> T:
    """Await ``step`` (provider code, run in its own task) with its escapes contained."""
    try:
        return await step
    except (Exception, GeneratorExit):  # GeneratorExit: the coroutine is being closed
        raise
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # ours: the deadline ran out or the app is shutting down
        raise ProviderCrashed("raised CancelledError without being cancelled") from None
    except BaseException as exc:
        raise ProviderCrashed(f"raised {exc!r}") from exc


def consume(task: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned task's outcome so asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()
