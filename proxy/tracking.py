"""Tracking URLs carrying the decision id, and the signed click redirect at /_sw/click.

Impressions and clicks are pixels at ``/_sw/px`` (served by slotwise.proxy.events). Where a
click must pass through the proxy and then go on to the advertiser (a generic JSON ad's click
URL), the target is signed with HMAC-SHA256 over the decision id and the exact target, so
``/_sw/click`` redirects only to targets the proxy itself wrote: it can never serve as an open
redirect.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
from typing import Final
from urllib.parse import quote

from slotwise.proxy.adapters.base import Trackers

PIXEL_PATH: Final = "/_sw/px"
_URL_SAFE: Final = re.compile(r"[A-Za-z0-9_-]+")
CLICK_PATH: Final = "/_sw/click"


@functools.lru_cache(maxsize=4096)
def _quoted(text: str) -> str:
    # click targets repeat across requests (one per creative): quote each once
    return text if _URL_SAFE.fullmatch(text) else quote(text, safe="")


def _quoted_id(decision_id: str) -> str:
    # ids are unique, so not cached; ours are URL-safe already
    return decision_id if _URL_SAFE.fullmatch(decision_id) else quote(decision_id, safe="")


def new_decision_id() -> str:
    """A fresh, unguessable decision id (URL-safe)."""
    return secrets.token_urlsafe(12)


class ClickSigner:
    """Signs and verifies click redirect targets with a secret key."""

    def __init__(self, key: bytes, base_url: str = "") -> None:
        if len(key) < 16:
            raise ValueError("the click signing key must be at least 16 bytes")
        self._key = key
        self.base_url = base_url.rstrip("/")
        self._per_base: dict[str, ClickSigner] = {}  # signers for other public origins

    def signature(self, decision_id: str, target: str) -> str:
        mac = hmac.new(self._key, f"{decision_id}\n{target}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()[:18]).decode("ascii")

    def verify(self, decision_id: str, target: str, signature: str) -> bool:
        return hmac.compare_digest(self.signature(decision_id, target), signature)

    def redirect(self, decision_id: str, target: str) -> str:
        return (
            f"{self.base_url}{CLICK_PATH}?d={_quoted_id(decision_id)}"
            f"&u={_quoted(target)}&s={self.signature(decision_id, target)}"
        )

    def trackers(self, decision_id: str, base_url: str | None = None) -> Trackers:
        """The tracker URLs of one decision; ``base_url`` is the proxy's public origin."""
        base = (base_url or self.base_url).rstrip("/")
        signer = self if base == self.base_url else self._for_base(base)
        did = _quoted_id(decision_id)
        return Trackers(
            decision_id=decision_id,
            impression=f"{base}{PIXEL_PATH}?t=impression&did={did}",
            click=f"{base}{PIXEL_PATH}?t=click&did={did}",
            click_redirect_base=f"{base}{CLICK_PATH}",
            signer=signer,
        )

    def _for_base(self, base: str) -> ClickSigner:
        signer = self._per_base.get(base)
        if signer is None:
            if len(self._per_base) >= 64:  # Host headers vary; keep the cache bounded
                self._per_base.clear()
            signer = self._per_base[base] = ClickSigner(self._key, base)
        return signer
