"""The revert state in the shared store, and each proxy's snapshot of it.

Store keys (one store for every proxy and the learner):

- ``guardrail:reverted``: the set of campaign names served generic now;
- ``guardrail:revert:NAME``: why (JSON: when, the difference with its always-valid interval,
  the arms' sizes, the goal);
- ``guardrail:enabled:NAME``: when a person re-enabled it (JSON: when, who); the learner
  starts the campaign's statistics afresh from then;
- ``guardrail:stats:NAME``: the learner's statistics of the campaign's two arms, saved with
  each model publish (when the decisions they count are acknowledged), so a restarted learner
  carries on where it was.

A proxy never reads the store on a request: ``RevertSnapshot.watch`` reads the set every
``refresh`` seconds in the background and swaps an immutable frozenset in by reference; the
request path reads ``snapshot.campaigns`` (a campaign in it is served generic). A store that
does not answer keeps the last snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import msgspec

from slotwise.proxy.state import Store

REVERTED = "guardrail:reverted"
log = logging.getLogger("slotwise.guardrail")


def revert_key(campaign: str) -> str:
    return f"guardrail:revert:{campaign}"


def enabled_key(campaign: str) -> str:
    return f"guardrail:enabled:{campaign}"


def stats_key(campaign: str) -> str:
    return f"guardrail:stats:{campaign}"


class RevertRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Why a campaign was reverted (stored under ``guardrail:revert:NAME``)."""

    campaign: str
    at: float
    goal: str = ""
    difference: float  # goal per decision, personalised - control
    low: float  # the always-valid 95% interval of the difference
    high: float
    relative: float | None = None
    personalised: int = 0
    control: int = 0


class EnableRecord(msgspec.Struct, frozen=True, kw_only=True):
    campaign: str
    at: float
    by: str = ""


async def revert(store: Store, record: RevertRecord) -> bool:
    """Mark the campaign reverted; False when it already was (nothing changes then)."""
    await store.set(revert_key(record.campaign), msgspec.json.encode(record))
    return await store.set_add(REVERTED, record.campaign.encode()) > 0


async def enable(store: Store, campaign: str, by: str = "", now: float | None = None) -> bool:
    """Re-enable personalisation of a reverted campaign; False when it was not reverted."""
    at = time.time() if now is None else now
    removed = await store.set_remove(REVERTED, campaign.encode()) > 0
    if removed:
        await store.delete(stats_key(campaign))  # its test starts afresh, restarts included
        await store.set(enabled_key(campaign), msgspec.json.encode(EnableRecord(
            campaign=campaign, at=at, by=by)))  # fmt: skip
    return removed


async def reverted(store: Store) -> frozenset[str]:
    return frozenset(m.decode("utf-8", "replace") for m in await store.set_members(REVERTED))


async def details(store: Store, campaign: str) -> RevertRecord | None:
    data = await store.get(revert_key(campaign))
    if data is None:
        return None
    try:
        return msgspec.json.decode(data, type=RevertRecord)
    except msgspec.MsgspecError:
        return None


async def enabled_at(store: Store, campaign: str) -> float | None:
    data = await store.get(enabled_key(campaign))
    if data is None:
        return None
    try:
        return msgspec.json.decode(data, type=EnableRecord).at
    except msgspec.MsgspecError:
        return None


class RevertSnapshot:
    """The reverted campaigns as one proxy sees them: an immutable set, swapped whole."""

    __slots__ = ("campaigns", "refreshed", "errors")

    def __init__(self, campaigns: frozenset[str] = frozenset()) -> None:
        self.campaigns = campaigns
        self.refreshed = 0.0  # when the store last answered (time.time())
        self.errors = 0

    async def refresh(self, store: Store) -> None:
        found = await reverted(store)
        if found != self.campaigns:
            added, removed = found - self.campaigns, self.campaigns - found
            for name in sorted(added):
                log.warning("guardrail: campaign %s is reverted: serving generic to everyone", name)
            for name in sorted(removed):
                log.warning("guardrail: campaign %s is re-enabled: personalising again", name)
            self.campaigns = found
        self.refreshed = time.time()

    async def watch(self, store: Store, interval: float) -> None:
        """Refresh every ``interval`` seconds until cancelled; a failing store keeps the last
        snapshot (and is logged once per failure streak)."""
        failing = False
        while True:
            try:
                await self.refresh(store)
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep serving the last snapshot
                self.errors += 1
                if not failing:
                    log.error("guardrail: cannot read the revert set, keeping the last: %s", exc)
                failing = True
            await asyncio.sleep(interval)

    def metrics(self) -> list[str]:
        lines = [
            "# HELP slotwise_guardrail_reverted Campaigns a guardrail reverted to generic"
            " (1 while reverted), as this proxy last read them.",
            "# TYPE slotwise_guardrail_reverted gauge",
        ]
        lines += [
            f'slotwise_guardrail_reverted{{campaign="{_label(name)}"}} 1'
            for name in sorted(self.campaigns)
        ]
        lines += [
            "# HELP slotwise_guardrail_refresh_errors_total Failed reads of the revert set.",
            "# TYPE slotwise_guardrail_refresh_errors_total counter",
            f"slotwise_guardrail_refresh_errors_total {self.errors}",
        ]
        return lines


def _label(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
