"""What the learner does with the guardrail: feed the monitor, revert, alert, notice re-enables.

``Guardrails.observe`` takes every joined decision; ``Guardrails.check`` (after each batch,
at most every ``interval`` seconds) reads the revert set, restarts the statistics of a
campaign a person re-enabled since, runs the monitor, and for each campaign newly found
harmed: stores the revert (every proxy picks it up within its refresh interval), logs one
line (``guardrail: reverted campaign ...``, level WARNING), counts it (``reverts``), and POSTs
the revert record as JSON to ``webhook_url`` when one is configured (headers ``webhook-id``
and ``webhook-timestamp`` as Standard Webhooks name them; three tries, a failure logged,
never fatal: the revert is what matters).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from slotwise.proxy.guardrail import state
from slotwise.proxy.guardrail.monitor import Monitor, Verdict
from slotwise.proxy.state import Store

log = logging.getLogger("slotwise.guardrail")
WEBHOOK_TRIES = 3


@dataclass(slots=True)
class Guardrails:
    store: Store
    monitor: Monitor
    webhook_url: str = ""
    interval: float = 1.0
    clock: Callable[[], float] = time.time
    reverts: dict[str, int] = field(default_factory=dict)  # campaign -> reverts by this process
    alerts_failed: int = 0
    _known: frozenset[str] = frozenset()
    _last: float = float("-inf")
    _loaded: bool = False

    async def load(self) -> None:
        """The statistics a previous learner saved (once, before the first check)."""
        self._loaded = True
        for campaign in self.monitor.rules:
            data = await self.store.get(state.stats_key(campaign))
            if data is None:
                continue
            try:
                saved = msgspec.json.decode(data, type=dict[str, float])
                self.monitor.restore(campaign, saved)
            except (msgspec.MsgspecError, KeyError):
                log.warning("guardrail: the saved statistics of %s are unreadable", campaign)

    async def save(self) -> None:
        """Save every campaign's statistics (with a publish: what they count is acknowledged)."""
        for campaign in list(self.monitor.campaigns):
            data = msgspec.json.encode(self.monitor.saved(campaign))
            await self.store.set(state.stats_key(campaign), data)

    def observe(
        self, campaign: str, ts: float, holdout: bool, fail_open: str | None, value: float
    ) -> None:
        self.monitor.observe(campaign, ts, holdout, fail_open, value)

    async def start(self) -> None:
        if not self._loaded:
            await self.load()

    async def check(self, force: bool = False) -> list[Verdict]:
        now = self.clock()
        if not force and now - self._last < self.interval:
            return []
        await self.start()
        self._last = now
        current = await state.reverted(self.store)
        for campaign in self._known - current:  # a person re-enabled it
            since = await state.enabled_at(self.store, campaign)
            self.monitor.restart(campaign, since if since is not None else now)
            log.warning("guardrail: campaign %s re-enabled; its test starts afresh", campaign)
        self._known = current
        acted = []
        for verdict in self.monitor.check(skip=current):
            record = _record(verdict, now)
            if await state.revert(self.store, record):
                acted.append(verdict)
                self.reverts[verdict.campaign] = self.reverts.get(verdict.campaign, 0) + 1
                log.warning(
                    "guardrail: reverted campaign %s to generic for everyone: goal per decision"
                    " %+.4g vs control (always-valid 95%% interval %.4g to %.4g; %d personalised,"
                    " %d control decisions); re-enable with `slotwise guardrail enable %s`",
                    verdict.campaign, verdict.sequence.difference, verdict.sequence.low,
                    verdict.sequence.high, verdict.personalised, verdict.control,
                    verdict.campaign,
                )  # fmt: skip
                if self.webhook_url:
                    await self._alert(record)
        self._known = self._known | {v.campaign for v in acted}
        return acted

    async def _alert(self, record: state.RevertRecord) -> None:
        import httpx

        body = msgspec.json.encode({"type": "guardrail.reverted", "data": record})
        headers = {
            "content-type": "application/json",
            "webhook-id": f"guardrail-{record.campaign}-{int(record.at)}",
            "webhook-timestamp": str(int(record.at)),
        }
        async with httpx.AsyncClient(timeout=5.0) as client:
            for attempt in range(WEBHOOK_TRIES):
                try:
                    response = await client.post(self.webhook_url, content=body, headers=headers)
                    if response.status_code < 300:
                        return
                    problem = f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    problem = str(exc) or type(exc).__name__
                await asyncio.sleep(0.5 * (attempt + 1))
        self.alerts_failed += 1
        log.error("guardrail: the alert webhook failed (%s); campaign %s stays reverted",
                  problem, record.campaign)  # fmt: skip


def _record(verdict: Verdict, now: float) -> state.RevertRecord:
    s = verdict.sequence
    return state.RevertRecord(
        campaign=verdict.campaign,
        at=now,
        goal=verdict.goal,
        difference=s.difference,
        low=s.low,
        high=s.high,
        relative=s.relative,
        personalised=verdict.personalised,
        control=verdict.control,
    )
