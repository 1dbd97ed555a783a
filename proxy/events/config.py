"""``[events]`` configuration: limits, retention, deduplication window and the admin token."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec

_DAY = 86_400.0
Seconds = Annotated[float, msgspec.Meta(gt=0)]
Positive = Annotated[int, msgspec.Meta(gt=0)]


class EventsConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Everything the event endpoints need to know; validated once at start-up."""

    max_event_bytes: Positive = 32 * 1024
    max_batch_bytes: Positive = 500 * 1024
    max_batch_events: Positive = 500
    body_timeout: Seconds = 30.0  # to receive a whole body (408 beyond)
    dedup_window: Seconds = _DAY  # same event id within this window is stored once
    event_retention: Seconds = 90 * _DAY  # raw events and decisions are trimmed after this
    user_state_ttl: Seconds = 30 * _DAY  # per-user histories expire after this much silence
    history_max_len: Annotated[int, msgspec.Meta(ge=0)] = 200  # 0 = keep no histories
    retention_interval: Seconds = 3600.0
    retry_after: Positive = 5  # seconds, sent with 503 while the store is unreachable
    admin_token: str | None = None  # DELETE /_sw/admin/users/{id} is disabled without one
    admin_loopback_only: bool = True
    consent_default: Literal["personal", "contextual"] = "contextual"
    honor_gpc: bool = True
    events_log: str = "events"
    decisions_log: str = "decisions"
    audit_log: str = "audit"

    def __post_init__(self) -> None:
        if self.admin_token is not None and len(self.admin_token) < 16:
            raise ValueError("admin_token must be at least 16 characters")
        if self.max_event_bytes > self.max_batch_bytes:
            raise ValueError("max_event_bytes cannot exceed max_batch_bytes")

    @classmethod
    def load(
        cls, section: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None
    ) -> EventsConfig:
        """From a ``[events]`` table plus ``SLOTWISE_ADMIN_TOKEN``; ValueError names the field."""
        values = dict(section or {})
        token = (os.environ if env is None else env).get("SLOTWISE_ADMIN_TOKEN")
        if token:
            values["admin_token"] = token
        try:
            return msgspec.convert(values, cls)
        except msgspec.ValidationError as exc:
            raise ValueError(f"[events] {exc}") from None
