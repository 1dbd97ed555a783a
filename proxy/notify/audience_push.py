"""Scheduled pushes of an audience to a webhook: ``[audience_pushes.NAME]`` tables.

Each table names an ``audience`` (a trigger of the policies: the users currently in its state,
or ``segment:NAME``: the users a named segment holds for; slotwise.proxy.triggers.audiences), a
``webhook`` (a ``[webhooks.NAME]`` endpoint) and an ``interval`` in seconds. The notification
sender runs them while it holds its lease, so one process across every proxy pushes
(``slotwise serve``'s sender or ``slotwise notify serve``).

Pushes fall on wall-clock multiples of the interval (``interval = 3600``: on the hour; the
first right after the sender starts). The audience is read when its push is due, so consent is
respected and erased users are absent as in ``slotwise audiences export``. The members go in
pages of :data:`PAGE` users, each page one POST signed as notifications are (Standard Webhooks),
``type`` :data:`EVENT_TYPE`, ``webhook-id`` ``audience:NAME:PERIOD:PAGE`` (the same on every
retry and after a takeover: the receiver drops repeats). The period pushed last is kept in the
store once every page was delivered; a failed page retries the push after ``notify.retry_base``
seconds (doubling, at most the interval), a 410 skips that period.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from slotwise.proxy.notify import stats
from slotwise.proxy.notify.endpoints import Endpoint
from slotwise.proxy.notify.errors import NotifyError
from slotwise.proxy.notify.webhook import WebhookChannel, envelope
from slotwise.proxy.state.base import Store, escape_key_part

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledPolicySet

log = logging.getLogger("slotwise.notify")

EVENT_TYPE: Final = "slotwise.audience"
PAGE: Final = 1000  # members per POST
MIN_INTERVAL: Final = 1.0
_KEYS = frozenset({"audience", "webhook", "interval"})


@dataclass(frozen=True, slots=True)
class AudiencePush:
    name: str
    audience: str  # a trigger's name, or segment:NAME
    webhook: str  # a [webhooks.NAME] endpoint
    interval: float  # seconds


def audience_pushes(
    tables: Mapping[str, Mapping[str, Any]],
    endpoints: Mapping[str, Endpoint],
    policy: CompiledPolicySet | None = None,
) -> list[AudiencePush]:
    """Every ``[audience_pushes.NAME]`` table, checked against the endpoints (and the
    policies' triggers when given); NotifyError naming the first problem."""
    pushes = [_push(name, table, endpoints) for name, table in tables.items()]
    if policy is not None:
        from slotwise.proxy.triggers.audiences import names

        triggers = set(names(policy))  # triggers' names and segment:NAME
        for push in pushes:
            if push.audience not in triggers:
                raise NotifyError(
                    f"audience {push.audience!r} is not a trigger or segment of the policies "
                    f"(audiences: {', '.join(sorted(triggers)) or 'none'})",
                    code="unknown_audience",
                    where=f"[audience_pushes.{push.name}]",
                    hint="name a trigger of the policies: slotwise audiences list",
                )
    return pushes


def _push(name: str, table: Mapping[str, Any], endpoints: Mapping[str, Endpoint]) -> AudiencePush:
    where = f"[audience_pushes.{name}]"
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise NotifyError(
            f"unknown key {unknown[0]!r} (the keys are audience, webhook, interval)", where=where
        )
    audience, webhook, interval = table.get("audience"), table.get("webhook"), table.get("interval")
    if not isinstance(audience, str) or not audience:
        raise NotifyError("audience must name a trigger of the policies", where=where)
    if not isinstance(webhook, str) or webhook not in endpoints:
        known = ", ".join(sorted(endpoints)) or "none"
        raise NotifyError(
            f"webhook must name a [webhooks.NAME] table (configured: {known})",
            code="unknown_endpoint",
            where=where,
            hint="add [webhooks.NAME] with url and secrets_env to slotwise.toml",
        )
    if (
        isinstance(interval, bool)
        or not isinstance(interval, int | float)
        or not math.isfinite(interval)
        or interval < MIN_INTERVAL
    ):
        raise NotifyError(
            f"interval must be a number of seconds, at least {MIN_INTERVAL:g} (3600: hourly)",
            where=where,
        )
    return AudiencePush(name, audience, webhook, float(interval))


def done_key(name: str) -> str:
    """The store key of the period push ``name`` delivered last."""
    return f"notify:audience_push:{escape_key_part(name)}"


class AudiencePusher:
    """Runs the due pushes; called by the active sender (the lease holder) each round."""

    def __init__(
        self,
        store: Store,
        pushes: list[AudiencePush],
        channel: WebhookChannel,
        policy: Callable[[], CompiledPolicySet | None],
        *,
        retry_base: float,
    ) -> None:
        self.store = store
        self.pushes = pushes
        self.channel = channel
        self.policy = policy
        self.retry_base = retry_base
        self._retry_at: dict[str, tuple[float, int]] = {}  # name -> (not before, failures)

    async def run_due(self, now: float) -> int:
        """Push every audience whose period came and was not pushed yet; how many pushed."""
        done = await self.store.get_many([done_key(p.name) for p in self.pushes])
        pushed = 0
        for push, raw in zip(self.pushes, done, strict=True):
            period = int(now // push.interval)
            if raw is not None and int(raw) >= period:
                continue
            not_before, failures = self._retry_at.get(push.name, (0.0, 0))
            if now < not_before:
                continue
            if await self._push(push, period, now):
                self._retry_at.pop(push.name, None)
                pushed += 1
            else:
                delay = min(push.interval, self.retry_base * 2.0 ** min(failures, 30))
                self._retry_at[push.name] = (now + delay, failures + 1)
        return pushed

    async def _push(self, push: AudiencePush, period: int, now: float) -> bool:
        """One push, page by page; True once it is done (delivered, or refused for good)."""
        from slotwise.proxy.triggers.audiences import UnknownAudience, audience

        policy = self.policy()
        endpoint = self.channel.endpoints.get(push.webhook)
        if policy is None or endpoint is None:
            log.warning("audience push %s: no policy or endpoint %s", push.name, push.webhook)
            return False
        try:
            members = await audience(self.store, policy, push.audience, now=now)
        except UnknownAudience:  # the policies were reloaded without that trigger
            log.warning("audience push %s: no trigger %s now", push.name, push.audience)
            return False
        pages = max(1, math.ceil(len(members) / PAGE))
        for page in range(pages):
            rows = [m.row() for m in members[page * PAGE : (page + 1) * PAGE]]
            data = {
                "push": push.name, "audience": push.audience, "period": period,
                "page": page + 1, "pages": pages, "count": len(members), "members": rows,
            }  # fmt: skip
            message_id = f"audience:{push.name}:{period}:{page + 1}"
            outcome = await self.channel.post(
                endpoint, message_id, envelope(EVENT_TYPE, data, now), now
            )
            if outcome.permanent:
                log.warning("audience push %s: %s; period skipped", push.name, outcome.reason)
                break
            if not outcome.delivered:
                log.warning("audience push %s: %s; retried", push.name, outcome.reason)
                await stats.count(self.store, "audience_push_failed")
                return False
        else:
            await stats.count(self.store, "audience_pushed")
        await self.store.set(done_key(push.name), str(period).encode())
        return True
