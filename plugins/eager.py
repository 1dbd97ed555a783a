"""Run a coroutine eagerly: to completion right now if it never has to wait, else as a task.

Most providers never wait for I/O (request, device, geo from a memory-mapped database, time,
consent): wrapping each in an ``asyncio.Task`` per request would cost more than the work.
:func:`start` steps the coroutine once in the caller; if it finishes, its result is returned
directly; if it suspends on a future, the rest of it continues inside a new task, exactly as
Python 3.12's eager task factory does. Code run this way must not use ``asyncio.timeout`` or
``current_task()`` before its first suspension (the task is not the same before and after).
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


class Done:
    """A coroutine's outcome when it finished without suspending: a value or an exception."""

    __slots__ = ("value", "error")

    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value = value
        self.error = error


def start(coro: Coroutine[Any, Any, T]) -> Done | asyncio.Task[T]:
    """Step ``coro`` once: ``Done`` when it finished, else a task running the rest of it."""
    try:
        yielded = coro.send(None)
    except StopIteration as stop:
        return Done(stop.value)
    except Exception as exc:
        return Done(error=exc)
    return asyncio.ensure_future(_finish(coro, yielded))


async def _finish(coro: Coroutine[Any, Any, T], yielded: Any) -> T:
    result: T = await _resume(coro, yielded)
    return result


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], yielded: Any) -> Generator[Any, Any, Any]:
    """Drive ``coro`` on from the future it yielded to its first ``send`` (``yield from``)."""
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # cancellation and errors thrown in go to the coroutine
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration as stop:
                return stop.value
