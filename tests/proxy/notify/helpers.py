"""Shared pieces of the notification tests: notifications, settings, running a sender."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from slotwise.proxy.config import Settings
from slotwise.proxy.notify.outbox import Notification, enqueue, notification_key
from slotwise.proxy.notify.sender import Sender
from slotwise.proxy.state.base import Store

SECRET_VAR = "TEST_HOOK_SECRET"


def note(
    subject: str,
    *,
    channel: str = "webhook",
    template: str = "crm",
    due: float | None = None,
    episode: float | None = None,
    traits: dict[str, Any] | None = None,
    **extra: Any,
) -> Notification:
    episode = episode if episode is not None else time.time()
    return Notification(
        key=notification_key(subject, "cart_abandon", episode),
        subject=subject,
        trigger="cart_abandon",
        channel=channel,
        template=template,
        due=due if due is not None else time.time(),
        created=time.time(),
        traits=traits or {},
        offer={"id": "d.discount_10", "type": "discount", "value": 10},
        **extra,
    )


def settings(hook_url: str = "", **notify: Any) -> Settings:
    webhooks = {"crm": {"url": hook_url, "secrets_env": [SECRET_VAR]}} if hook_url else {}
    values = {
        "poll_interval": 0.02,
        "retry_base": 0.05,
        "retry_max": 0.2,
        "lease_seconds": 1.0,
        "timeout": 2.0,
        **notify,
    }
    return Settings.of(webhooks=webhooks, notify={**_defaults(), **values})


def _defaults() -> dict[str, Any]:
    from msgspec.structs import asdict

    from slotwise.proxy.config.sections import NotifyConfig

    return asdict(NotifyConfig())


async def run_until(sender: Sender, done: Callable[[], bool], timeout: float = 20.0) -> None:
    """Run ``sender`` until ``done()`` holds (AssertionError after ``timeout``), then stop it."""
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    deadline = time.monotonic() + timeout
    try:
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"not done within {timeout}s; counts {sender.counts}")
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


async def put(store: Store, *notifications: Notification) -> None:
    await enqueue(store, list(notifications))
