"""Tracking URLs carrying the decision id, and the signed click redirect at /_sw/click.

Impressions and clicks are pixels at ``/_sw/px`` (served by slotwise.proxy.events). Where a
click must pass through the proxy and then go on to the advertiser (a generic JSON ad's click
URL), the target is signed with HMAC-SHA256 over the decision id and the exact target, so
``/_sw/click`` redirects only to targets the proxy itself wrote: it can never serve as an open
redirect.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Sequence
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
    # ids are unique, so not cached beyond the last one: a decision's id is quoted for its
    # trackers and again for its click redirect (one tuple, replaced whole: never torn)
    global _last_quoted
    last = _last_quoted
    if last[0] == decision_id:
        return last[1]
    # ours are URL-safe already
    quoted = decision_id if _URL_SAFE.fullmatch(decision_id) else quote(decision_id, safe="")
    _last_quoted = (decision_id, quoted)
    return quoted


_last_quoted: tuple[str, str] = ("", "")
# urlsafe_b64encode's alphabet, from b2a_base64's output (base64's own function is Python)
_URL_SAFE_B64: Final = bytes.maketrans(b"+/", b"-_")


_ID_BYTES: Final = 12  # 16 URL-safe characters, no padding
_ID_CHARS: Final = 16
_ID_BATCH: Final = 256
_ids: Final[list[str]] = []


def new_decision_id() -> str:
    """A fresh, unguessable decision id: 16 URL-safe characters, starting with a letter or
    digit (the event endpoints refuse ids that start with ``-`` or ``_``)."""
    # As secrets.token_urlsafe(12), but the random bytes and their base64 come in batches:
    # one urandom call per 256 decisions. list.pop is atomic, so threads never share an id;
    # the batch is dropped in a forked child, so processes never do.
    try:
        return _ids.pop()
    except IndexError:
        _ids.extend(decision_ids(secrets.token_bytes(_ID_BYTES * _ID_BATCH)))
        return _ids.pop()


def decision_ids(random: bytes) -> list[str]:
    """The decision ids in ``random`` (12 bytes each): the 1 in 32 that would start with
    ``-`` or ``_`` is dropped (rejection keeps the rest uniform: 95 bits each)."""
    whole = len(random) - len(random) % _ID_BYTES  # a partial group would carry padding
    text = base64.urlsafe_b64encode(random[:whole]).decode()
    return [
        text[i : i + _ID_CHARS]
        for i in range(0, len(text), _ID_CHARS)
        if text[i] != "-" and text[i] != "_"
    ]


os.register_at_fork(after_in_child=_ids.clear)


class ClickSigner:
    """Signs and verifies click redirect targets with a secret key."""

    def __init__(self, key: bytes, base_url: str = "", previous: Sequence[bytes] = ()) -> None:
        if len(key) < 16:
            raise ValueError("the click signing key must be at least 16 bytes")
        self._key = key
        # keys being rotated out: links they signed still verify (never used to sign)
        self._previous = tuple(ClickSigner(old) for old in previous)
        # HMAC-SHA256 with the padded key's two hash states made once (RFC 2104): a click is
        # then two hash copies, about 3x cheaper than hmac.digest, which re-derives them
        block = hashlib.sha256(key).digest() if len(key) > 64 else key
        block = block.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
        self.base_url = base_url.rstrip("/")
        self._click_prefix = f"{self.base_url}{CLICK_PATH}?d="
        # per public origin: (signer, impression prefix, click prefix, redirect base)
        self._prefixes: dict[str, tuple[ClickSigner, str, str, str]] = {}

    def signature(self, decision_id: str, target: str) -> str:
        inner = self._inner.copy()
        inner.update(f"{decision_id}\n{target}".encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        encoded = binascii.b2a_base64(outer.digest()[:18], newline=False)
        return encoded.translate(_URL_SAFE_B64).decode("ascii")

    def verify(self, decision_id: str, target: str, signature: str) -> bool:
        # compare_digest refuses non-ASCII text, and no signature of ours has any
        if not signature.isascii():
            return False
        if hmac.compare_digest(self.signature(decision_id, target), signature):
            return True
        return any(old.verify(decision_id, target, signature) for old in self._previous)

    def redirect(self, decision_id: str, target: str) -> str:
        signature = self.signature(decision_id, target)
        return f"{self._click_prefix}{_quoted_id(decision_id)}&u={_quoted(target)}&s={signature}"

    def trackers(self, decision_id: str, base_url: str | None = None) -> Trackers:
        """The tracker URLs of one decision; ``base_url`` is the proxy's public origin."""
        origin = base_url or self.base_url
        prefixes = self._prefixes.get(origin)
        if prefixes is None:
            if len(self._prefixes) >= 64:  # Host headers vary; keep the cache bounded
                self._prefixes.clear()
            base = origin.rstrip("/")
            signer = self if base == self.base_url else ClickSigner(self._key, base)
            signer._previous = self._previous
            prefixes = self._prefixes[origin] = (
                signer,
                f"{base}{PIXEL_PATH}?t=impression&did=",
                f"{base}{PIXEL_PATH}?t=click&did=",
                f"{base}{CLICK_PATH}",
            )
        signer, impression, click, redirect_base = prefixes
        did = _quoted_id(decision_id)
        return Trackers(decision_id, impression + did, click + did, redirect_base, signer)
