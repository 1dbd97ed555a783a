"""Webhook signatures exactly as the Standard Webhooks specification makes them.

The signed content is ``"{webhook-id}.{webhook-timestamp}.{body}"``; the signature is the
base64 of its HMAC-SHA256 under the secret's key, sent as ``v1,<base64>``. A secret is written
``whsec_`` followed by the base64 of the key (24 to 64 bytes). During a rotation the sender
signs with every configured secret, space-separated, so a receiver holding either verifies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence

from slotwise.proxy.notify.errors import NotifyError

SECRET_PREFIX = "whsec_"
#: How far a receiver accepts a timestamp from its clock (the specification's five minutes).
TOLERANCE_SECONDS = 300


def secret_key(secret: str, *, where: str = "") -> bytes:
    """The HMAC key of a ``whsec_...`` secret; NotifyError(bad_secret) when it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        raise NotifyError(
            "a webhook secret must start with whsec_", code="bad_secret", where=where,
            hint="generate one: python -c \"import base64, os; "
            "print('whsec_' + base64.b64encode(os.urandom(32)).decode())\"",
        )  # fmt: skip
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise NotifyError(
            "the part after whsec_ is not base64", code="bad_secret", where=where
        ) from None
    if not 24 <= len(key) <= 64:
        raise NotifyError(
            f"the key is {len(key)} bytes once decoded; it must be 24 to 64",
            code="bad_secret",
            where=where,
        )
    return key


def sign(keys: Sequence[bytes], message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: one ``v1,<base64>`` per key, space-separated."""
    content = f"{message_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
        for key in keys
    )


def headers(keys: Sequence[bytes], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(keys, message_id, timestamp, body),
        "content-type": "application/json",
    }


def verify(secret: str, headers: Mapping[str, str], body: bytes, *, now: float) -> bool:
    """What a receiver does: the timestamp is recent and one ``v1`` signature matches."""
    try:
        message_id = headers["webhook-id"]
        timestamp = int(headers["webhook-timestamp"])
        given = headers["webhook-signature"].split(" ")
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        return False
    expected = sign([secret_key(secret)], message_id, timestamp, body)
    return any(hmac.compare_digest(expected, part) for part in given if part.startswith("v1,"))
