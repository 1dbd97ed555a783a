"""The sender: moves notifications from the outbox to their channels, once each.

Only the holder of the :class:`~slotwise.proxy.notify.lease.Lease` works; the others wait to
take over. The active sender, each round:

1. ingests new outbox records (consumer group :data:`~.schedule.GROUP`) and replay requests
   into the schedule (:mod:`.schedule`), then acknowledges them: a record received but not
   acknowledged before a crash is received again by the next holder, and recognised by its
   stored state, so nothing is lost and nothing is scheduled twice;
2. starts an attempt of each notification whose time has come (at most ``concurrency`` in
   flight, beside the rounds, so a slow endpoint holds up neither the outbox nor the lease):
   still wanted (the trigger's hook), its user not erased, outside the user's quiet hours
   (else moved to their end), then delivered through its channel. The attempt is counted in
   the store before it starts, its outcome after it ends: delivered, retried with
   exponential backoff and jitter, or a dead letter (a permanent failure, or
   :attr:`RetryPolicy.max_attempts` reached) with its reason.

A kill -9 between a delivery and the write of its outcome sends that notification again after
the takeover, under the same idempotency key (the webhook's ``webhook-id``, the e-mail's
Message-ID): at least once, never a duplicate beyond the key.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import msgspec

from slotwise.proxy.events.erasure import erased_key
from slotwise.proxy.notify import stats
from slotwise.proxy.notify.audience_push import AudiencePusher
from slotwise.proxy.notify.delivery import Channel, Outcome
from slotwise.proxy.notify.lease import Lease
from slotwise.proxy.notify.outbox import OUTBOX_LOG, Notification, decode
from slotwise.proxy.notify.quiet import quiet_until
from slotwise.proxy.notify.schedule import (
    CONSUMER,
    DEAD_LOG,
    GROUP,
    PENDING_SET,
    REPLAY_LOG,
    DeadLetter,
    Scheduled,
    decode_replay,
    decode_state,
    encode_dead,
    load_state,
    member,
    parse_member,
    save_state,
    state_key,
)
from slotwise.proxy.state.base import LogEntry, LogRecord, Store

log = logging.getLogger("slotwise.notify")

StillDue = Callable[[Notification], Awaitable[bool]]
_READ_BATCH = 500
_GAUGE_INTERVAL = 2.0
_TRIM_INTERVAL = 3600.0


async def always_due(notification: Notification) -> bool:
    """The default cancellation hook: every notification that became due is still wanted."""
    return True


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 8
    base: float = 30.0  # seconds before the first retry
    cap: float = 3600.0  # the longest wait

    def delay(self, attempts: int, retry_after: float | None, rng: Callable[[], float]) -> float:
        """Exponential backoff with jitter: between half and all of ``base * 2**(n-1)``."""
        ceiling: float = min(self.cap, self.base * 2.0 ** min(attempts - 1, 60))
        delay = ceiling * (0.5 + 0.5 * rng())
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.cap))
        return delay


class Sender:
    def __init__(
        self,
        store: Store,
        channels: Mapping[str, Channel],
        *,
        retry: RetryPolicy = RetryPolicy(),
        still_due: StillDue = always_due,
        lease_seconds: float = 10.0,
        poll_interval: float = 0.5,
        concurrency: int = 16,
        retention: float = 30 * 86_400.0,
        grace: float = 15.0,
        owner: str | None = None,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
        pusher: AudiencePusher | None = None,
    ) -> None:
        self.store = store
        self.channels = dict(channels)
        self.retry = retry
        self.still_due = still_due
        self.lease = Lease(store, lease_seconds, owner=owner, clock=clock)
        self.poll_interval = poll_interval
        self.concurrency = concurrency
        self.retention = retention
        self.clock = clock
        self.rng = rng
        self.active = False
        self.schedule: dict[tuple[str, str], float] = {}  # (subject, key) -> next attempt time
        self.counts: dict[str, int] = {}  # this process's counts (the store keeps the totals)
        self._gauges_at = 0.0
        self._trimmed_at = 0.0
        self._inflight: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.grace = grace  # seconds attempts in flight may take to end on stop
        # scheduled audience pushes ([audience_pushes.NAME]), run beside the rounds
        self.pusher = pusher
        self._pushing: asyncio.Task[None] | None = None

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Work until ``stop`` is set (or the task is cancelled); then give the lease up and
        close the channels' connections."""
        stop = stop or asyncio.Event()
        failure = ""
        try:
            while not stop.is_set():
                wait = self.poll_interval
                try:
                    wait = await self.step()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the store went away: start over from it later
                    if str(exc) != failure:  # once per outage, not every round
                        log.warning("notification sender: %s; retrying", exc)
                    failure = str(exc)
                    self.active = False
                else:
                    failure = ""
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=wait)
        finally:
            await self._finish_inflight()
            await self._release()

    async def step(self) -> float:
        """One round; returns how long to sleep before the next."""
        if not await self.lease.hold():
            if self.active:
                log.info("notification sender: lease lost, standing by")
            self.active = False
            self.schedule.clear()
            return self.poll_interval
        if not self.active:
            await self._load()
            # what a predecessor (or this sender, before a store failure) received and did
            # not acknowledge: one batch per log at most, it acknowledged batch by batch
            while await self._ingest(pending=True):
                pass
            self.active = True
            log.info("notification sender: active (%d pending)", len(self.schedule))
        more = await self._ingest(pending=False)
        self._attempt_due()
        self._push_due()
        await self._publish_gauges()
        await self._trim()
        if more:
            return 0.0
        upcoming = min(
            (t for k, t in self.schedule.items() if k not in self._inflight), default=None
        )
        if upcoming is None:
            return self.poll_interval
        return max(0.0, min(self.poll_interval, upcoming - self.clock()))

    async def _release(self) -> None:
        try:
            await asyncio.shield(self.lease.release())
        except Exception:  # the lease expires by itself
            pass
        self.active = False
        for channel in self.channels.values():
            with contextlib.suppress(Exception):
                await channel.aclose()

    # -- the schedule -----------------------------------------------------------------------

    async def _load(self) -> None:
        """The whole schedule, from the store (after taking over or after a store failure)."""
        self.schedule.clear()
        pending = [p for p in map(parse_member, await self.store.set_members(PENDING_SET)) if p]
        for start in range(0, len(pending), _READ_BATCH):
            chunk = pending[start : start + _READ_BATCH]
            states = await self.store.get_many([state_key(s, k) for s, k in chunk])
            for (subject, key), raw in zip(chunk, states, strict=True):
                state = decode_state(raw)
                # missing (erased) or finished: attempted at once, which tidies the set
                self.schedule[(subject, key)] = state.next_at if state is not None else 0.0

    async def _ingest(self, *, pending: bool) -> bool:
        """One batch of each log (a backlog takes several rounds, so the lease is renewed
        between them); whether a log had more."""
        more = False
        for log_name in (OUTBOX_LOG, REPLAY_LOG):
            entries = await self.store.log_group_read(
                log_name, GROUP, CONSUMER, count=_READ_BATCH, pending=pending
            )
            for entry in entries:
                if log_name == OUTBOX_LOG:
                    await self._ingest_outbox(entry)
                else:
                    await self._ingest_replay(entry)
            if entries:
                await self.store.log_ack(log_name, GROUP, [e.position for e in entries])
            more = more or len(entries) == _READ_BATCH
        return more

    async def _ingest_outbox(self, entry: LogEntry) -> None:
        try:
            notification = decode(entry.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            letter = DeadLetter(
                key=f"outbox:{entry.position}",
                subject=entry.subject,
                reason=f"malformed: the outbox record does not decode ({exc})",
                attempts=0,
                at=self.clock(),
            )
            await self._append_dead(letter)
            return
        state = await load_state(self.store, notification.subject, notification.key)
        if state is None:
            state = Scheduled(
                notification=notification, next_at=notification.due, updated=self.clock()
            )
            await save_state(self.store, state)
        elif state.status != "pending":
            return  # received again after a crash: already sent, dead or cancelled
        await self._schedule(state)

    async def _ingest_replay(self, entry: LogEntry) -> None:
        request = decode_replay(entry.data)
        if request is None:
            return
        n = request.notification
        state = await load_state(self.store, n.subject, n.key)
        if state is not None and state.status != "dead":
            return  # replayed twice, or already sent again
        generation = state.generation + 1 if state is not None else 1
        state = Scheduled(
            notification=n, next_at=self.clock(), generation=generation, updated=self.clock()
        )
        await save_state(self.store, state)
        await self._schedule(state)

    async def _schedule(self, state: Scheduled) -> None:
        n = state.notification
        await self.store.set_add(PENDING_SET, member(n.subject, n.key))
        self.schedule[(n.subject, n.key)] = state.next_at

    async def _unschedule(self, subject: str, key: str) -> None:
        await self.store.set_remove(PENDING_SET, member(subject, key))
        self.schedule.pop((subject, key), None)

    # -- attempts ---------------------------------------------------------------------------

    def _attempt_due(self) -> None:
        """Start attempts of the due notifications, up to ``concurrency`` in flight. They run
        beside the rounds, so a slow endpoint holds neither the outbox nor the lease's
        renewal."""
        at = self.clock()
        room = self.concurrency - len(self._inflight)
        if room <= 0 or self.lease.valid_for() <= 0:
            return
        due = sorted(
            (t, k) for k, t in self.schedule.items() if t <= at and k not in self._inflight
        )
        for _, (subject, key) in due[:room]:
            task = asyncio.create_task(self._attempt_logged(subject, key))
            self._inflight[(subject, key)] = task
            task.add_done_callback(functools.partial(self._landed, (subject, key)))

    def _push_due(self) -> None:
        """The audience pushes whose time came, one run at a time, beside the rounds (a slow
        receiver holds up neither the outbox nor the lease), only while the lease is held."""
        if self.pusher is None or self.lease.valid_for() <= 0:
            return
        if self._pushing is None or self._pushing.done():
            self._pushing = asyncio.create_task(self._push_logged(self.pusher))

    async def _push_logged(self, pusher: AudiencePusher) -> None:
        try:
            await pusher.run_due(self.clock())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the store failed mid-push: tried again next round
            log.warning("audience push interrupted: %s", exc)

    def _landed(self, key: tuple[str, str], task: asyncio.Task[None]) -> None:
        self._inflight.pop(key, None)

    async def _attempt_logged(self, subject: str, key: str) -> None:
        try:
            await self._attempt(subject, key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the store failed mid-attempt: it stays due, tried again
            log.warning("notification %s: attempt interrupted: %s", key, exc)

    async def _finish_inflight(self) -> None:
        """On stop: let attempts (and a push) in flight end (their timeouts bound them)."""
        pushing = [self._pushing] if self._pushing is not None else []
        if self._inflight or pushing:
            tasks = [*self._inflight.values(), *pushing]
            _, pending = await asyncio.wait(tasks, timeout=self.grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    async def _attempt(self, subject: str, key: str) -> None:  # noqa: C901 (one path, read down)
        state = await load_state(self.store, subject, key)
        if state is None:  # erased with its user (or expired): nothing left to send
            await self._unschedule(subject, key)
            await self._count("erased")
            return
        if state.status != "pending":
            await self._unschedule(subject, key)
            return
        now = self.clock()
        if state.next_at > now:
            self.schedule[(subject, key)] = state.next_at
            return
        n = state.notification
        if await self.store.get(erased_key(n.subject)) is not None:
            await self.store.delete(state_key(n.subject, n.key))
            await self._unschedule(subject, key)
            await self._count("erased")
            return
        quiet_end = quiet_until(now, n.quiet_start, n.quiet_end, n.time_zone)
        if quiet_end > now:
            state.next_at = quiet_end
            await self._save(state)
            await self._count("delayed_quiet")
            return
        if not await self.still_due(n):
            state.status = "cancelled"
            await self._save(state)
            await self._unschedule(subject, key)
            await self._count("cancelled")
            return
        if state.attempts >= self.retry.max_attempts:  # crashed in its last attempt(s)
            await self._dead(state, f"attempts: {state.attempts} started, none confirmed")
            return
        channel = self.channels.get(n.channel)
        if channel is None:
            await self._dead(state, f"no_channel: {n.channel} is not configured")
            return
        state.attempts += 1
        await self._save(state)
        outcome = await self._deliver(channel, n)
        if outcome.delivered:
            state.status, state.reason = "sent", ""
            await self._save(state)
            await self._unschedule(subject, key)
            await self._count("sent")
        elif outcome.permanent or state.attempts >= self.retry.max_attempts:
            await self._dead(state, outcome.reason)
        else:
            state.reason = outcome.reason
            state.next_at = self.clock() + self.retry.delay(
                state.attempts, outcome.retry_after, self.rng
            )
            await self._save(state)
            await self._count("retried")
            log.info("notification %s: attempt %d failed (%s)", key, state.attempts, outcome.reason)

    async def _deliver(self, channel: Channel, n: Notification) -> Outcome:
        try:
            return await channel.deliver(n)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in a channel must not stop the others
            log.exception("notification %s: channel %s failed", n.key, n.channel)
            return Outcome.retry(f"internal: {type(exc).__name__}: {exc}")

    async def _save(self, state: Scheduled) -> None:
        state.updated = self.clock()
        await save_state(self.store, state)
        n = state.notification
        if state.status == "pending":
            self.schedule[(n.subject, n.key)] = state.next_at

    async def _dead(self, state: Scheduled, reason: str) -> None:
        n = state.notification
        letter = DeadLetter(
            key=n.key,
            subject=n.subject,
            reason=reason,
            attempts=state.attempts,
            at=self.clock(),
            generation=state.generation,
            notification=n,
        )
        await self._append_dead(letter)
        state.status, state.reason = "dead", reason
        await self._save(state)
        await self._unschedule(n.subject, n.key)
        log.warning("notification %s is a dead letter: %s", n.key, reason)

    async def _append_dead(self, letter: DeadLetter) -> None:
        record = LogRecord(encode_dead(letter), letter.subject, f"{letter.key}#{letter.generation}")
        await self.store.log_append(DEAD_LOG, [record], dedup_ttl=7 * 24 * 3600.0)
        await self._count("dead_lettered")

    async def _count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1
        await stats.count(self.store, name)

    async def _trim(self) -> None:
        """Retention: drop outbox records, replay requests and dead letters older than
        ``retention`` (once an hour; every record that old was acknowledged long ago)."""
        at = self.clock()
        if at - self._trimmed_at < _TRIM_INTERVAL:
            return
        self._trimmed_at = at
        for log_name in (OUTBOX_LOG, REPLAY_LOG, DEAD_LOG):
            await self.store.log_trim(log_name, before=at - self.retention)

    async def _publish_gauges(self) -> None:
        at = self.clock()
        if at - self._gauges_at < _GAUGE_INTERVAL:
            return
        self._gauges_at = at
        due = [t for t in self.schedule.values() if t <= at]
        lag = at - min(due) if due else 0.0
        gauges = stats.Gauges(lag=lag, pending=len(self.schedule), at=at)
        await stats.publish_gauges(self.store, gauges, ttl=self.lease.seconds * 3)
