"""The learner as a long-running service: read, learn, publish until stopped, and say so.

:func:`run_service` drives a :class:`~slotwise.proxy.learn.service.LearnerService` the way
``slotwise learn --serve`` runs it: every publish is logged (and copied to the state store with
``bandit.models_in_store``); a store that fails does not end the service: the failure is logged
(at most once a minute for the same message, slotwise.proxy.logs), ``/health`` answers 503 with
the reason, and reads are retried with a growing pause (up to 10 s) until the store answers
again. Entries are acknowledged only after a publish, so nothing read before a failure is lost.
SIGTERM or SIGINT (``stop``) publishes once more, then the endpoints close and it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from slotwise.proxy.learn.endpoints import LearnerEndpoints, LearnerHealth
from slotwise.proxy.state import StoreError

log = logging.getLogger("slotwise.learner")
_IDLE = 0.5  # seconds to wait when the logs had nothing new
_MAX_PAUSE = 10.0


async def run_service(
    service: Any, stop: asyncio.Event, mirror: Any, listen: tuple[str, int] | None
) -> None:
    health = LearnerHealth()
    endpoints = LearnerEndpoints(service, health)
    if listen is not None:
        port = await endpoints.start(*listen)
        log.info("learner endpoints on http://%s:%d (/health, /metrics)", listen[0], port)
    log.info("learning from the store as consumer %s", service.consumer)
    pause = _IDLE
    try:
        await _push(mirror)
        while not stop.is_set():
            published = len(service.stats.published)
            try:
                read = await service.run_once()
            except StoreError as error:
                health.failed(str(error))
                log.error("the store failed, retrying: %s", error)
                pause = min(pause * 2, _MAX_PAUSE)
                await _wait(stop, pause)
                continue
            health.ok()
            pause = _IDLE
            if len(service.stats.published) > published:
                _report(service.stats.published[published:])
                await _push(mirror)
            if read == 0:
                await _wait(stop, _IDLE)
        log.info("stopping: publishing once more")
        try:
            _report(await service.publish())
            await _push(mirror)
        except StoreError as error:  # unacknowledged entries are read again at the next start
            log.error("the last publish could not acknowledge its entries: %s", error)
    finally:
        await endpoints.aclose()
    log.info("stopped")


def _report(published: list[Any]) -> None:
    for info in published:
        log.info(
            "published %s %s (%d examples)",
            info.campaign,
            info.label,
            info.examples,
            extra={"campaign": info.campaign},
        )


async def _push(mirror: Any) -> None:
    if mirror is None:
        return
    try:
        moved = await mirror.push()
    except StoreError as error:
        log.error("models not copied to the store (the next publish tries again): %s", error)
        mirror.forget()
        return
    for campaign in moved:
        log.info("model of %s copied to the store", campaign, extra={"campaign": campaign})


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
