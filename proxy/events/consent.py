"""Consent for collected events: personal (identifiers kept) or contextual (stripped).

The decision reuses the consent provider (``slotwise.plugins.builtin.consent``): Global
Privacy Control (``Sec-GPC: 1``), the site's consent cookie and the IAB TCF string. On top of
it the SDK or pixel may state the site's own consent (``consent`` in the batch or query):
a stated denial always wins; a stated grant counts only where the provider had no record
(its ``default`` rule), never against GPC or a TCF refusal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from slotwise.plugins.builtin.configs import ConsentConfig
from slotwise.plugins.builtin.consent import ConsentProvider
from slotwise.plugins.request import RequestInfo

PERSONAL = "personal"
CONTEXTUAL = "contextual"

_GRANTS = frozenset({"personal", "granted", "all", "yes", "true", "1"})
_DENIALS = frozenset({"contextual", "denied", "necessary", "no", "false", "0"})


def stated_consent(value: str | None) -> str | None:
    """A consent level from the SDK's or pixel's ``consent`` value; None when absent/unknown."""
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in _GRANTS:
        return PERSONAL
    if lowered in _DENIALS:
        return CONTEXTUAL
    return None


def is_known_consent(value: str | None) -> bool:
    return value is None or stated_consent(value) is not None


class ConsentPolicy:
    """Decides the level of one incoming request to the event endpoints."""

    def __init__(
        self,
        config: ConsentConfig | None = None,
        *,
        default: str = CONTEXTUAL,
        honor_gpc: bool = True,
    ) -> None:
        """``config`` is the proxy's ``[plugins.consent]`` (IAB vendor id, purposes, cookie
        names), so events and decisions read consent the same way; without it, a config with
        ``default`` and ``honor_gpc`` (from ``[events]``) and no IAB vendor id."""
        if config is None:
            level: Literal["personal", "contextual"] = (
                "personal" if default == PERSONAL else "contextual"
            )
            config = ConsentConfig(default_level=level, honor_gpc=honor_gpc)
        self._provider = ConsentProvider(config)

    def decide(
        self,
        *,
        headers: Mapping[str, str],
        query: Mapping[str, str],
        cookies: Mapping[str, str],
        stated: str | None,
    ) -> tuple[str, str]:
        """The level and the reason (``gpc``, ``stated``, ``tcf_vendor_denied``...)."""
        request = RequestInfo(
            method="POST", path="/_sw/events", query=query, headers=headers, cookies=cookies
        )
        level, reason = self._provider.decide(request)
        if stated == CONTEXTUAL:
            return CONTEXTUAL, "stated"
        if stated == PERSONAL and reason == "default":
            return PERSONAL, "stated"
        return level, reason
