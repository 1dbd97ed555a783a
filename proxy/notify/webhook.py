"""The webhook channel: a signed JSON POST (Standard Webhooks) to the endpoint the policy names.

2xx is delivered; 410 Gone is permanent (the receiver asks us to stop); any other answer, a
timeout or a dropped connection is retried. Redirects are not followed (a 3xx is retried).
The ``webhook-id`` is the notification's idempotency key, the same on every attempt, so a
receiver deduplicates retries and the redelivery after a sender's crash.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec

from slotwise.proxy.notify import signing
from slotwise.proxy.notify.delivery import Outcome
from slotwise.proxy.notify.endpoints import Endpoint
from slotwise.proxy.notify.outbox import Notification

EVENT_TYPE = "slotwise.notification"
_encoder = msgspec.json.Encoder()


def envelope(event_type: str, data: Mapping[str, Any], at: float) -> bytes:
    """A body in the specification's recommended ``{type, timestamp, data}`` envelope."""
    timestamp = datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
    return _encoder.encode({"type": event_type, "timestamp": timestamp, "data": data})


def payload(notification: Notification, at: float) -> bytes:
    """A notification's body (:func:`envelope` of type :data:`EVENT_TYPE`)."""
    data: dict[str, Any] = {
        "key": notification.key,
        "user_id": notification.subject,
        "trigger": notification.trigger,
        "endpoint": notification.template,
        "due": notification.due,
        "traits": notification.traits,
        "offer": notification.offer,
    }
    return envelope(EVENT_TYPE, data, at)


class WebhookChannel:
    def __init__(self, endpoints: Mapping[str, Endpoint], timeout: float) -> None:
        self.endpoints = dict(endpoints)
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None  # made in the loop that sends

    async def deliver(self, notification: Notification) -> Outcome:
        endpoint = self.endpoints.get(notification.template)
        if endpoint is None:  # a policy reloaded since the start check named a new endpoint
            return Outcome.never(f"unknown_endpoint: no [webhooks.{notification.template}]")
        now = time.time()
        return await self.post(endpoint, notification.key, payload(notification, now), now)

    async def post(self, endpoint: Endpoint, message_id: str, body: bytes, at: float) -> Outcome:
        """POST ``body`` signed under ``message_id`` (the receiver's idempotency key) at time
        ``at``: delivered, retry (with the receiver's Retry-After) or never (410)."""
        headers = signing.headers(endpoint.keys, message_id, int(at), body)
        timeout = endpoint.timeout or self.timeout
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        try:
            response = await self._client.post(
                endpoint.url, content=body, headers=headers, timeout=timeout
            )
        except httpx.TimeoutException:
            return Outcome.retry(f"timeout: no answer within {timeout:g}s")
        except httpx.HTTPError as exc:  # refused, reset, dropped mid-answer, bad TLS
            return Outcome.retry(f"connection: {type(exc).__name__}: {exc}")
        status = response.status_code
        if 200 <= status < 300:
            return Outcome.ok()
        if status == 410:
            return Outcome.never("gone: the endpoint answered 410")
        return Outcome.retry(f"http_{status}", _retry_after(response.headers.get("retry-after")))

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: our own backoff is close enough
    return seconds if 0 <= seconds <= 86_400 else None
