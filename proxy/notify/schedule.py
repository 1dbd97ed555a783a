"""Where the sender keeps each notification's delivery state in the store.

- Per notification, a value under the user's keys (:func:`state_key`, erased with the user):
  its :class:`Scheduled` state (pending, sent, dead, cancelled), attempts, next attempt time
  and last failure. Kept :data:`~slotwise.proxy.notify.outbox.DEDUP_SECONDS` after it ends, so
  a notification read twice from the outbox (after a crash before its acknowledgement) is
  recognised and not sent again.
- The set :data:`PENDING_SET` names the pending ones (``[subject, key]``), so a sender that
  takes over loads the whole schedule without scanning.
- The logs :data:`DEAD_LOG` (dead letters, with the reason) and :data:`REPLAY_LOG` (replay
  requests of ``slotwise notify replay``, read by the active sender), records with the user as
  subject.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from slotwise.proxy.notify.outbox import DEDUP_SECONDS, Notification
from slotwise.proxy.state.base import LogRecord, Store, escape_key_part, subject_key

PENDING_SET = "notify:pending"
DEAD_LOG = "notify:dead"
REPLAY_LOG = "notify:replay"
GROUP = "notify-sender"
#: One consumer name for every sender: only the lease holder reads, and a sender that takes
#: over re-reads what its dead predecessor received but did not acknowledge.
CONSUMER = "active"

Status = Literal["pending", "sent", "dead", "cancelled"]

_encoder = msgspec.json.Encoder()


class Scheduled(msgspec.Struct, kw_only=True):
    notification: Notification
    status: Status = "pending"
    attempts: int = 0  # attempts started (counted before each one, so a crash counts)
    next_at: float = 0.0  # the earliest time of the next attempt
    reason: str = ""  # the last failure
    generation: int = 0  # bumped by each replay of a dead letter
    updated: float = 0.0


class DeadLetter(msgspec.Struct, kw_only=True):
    key: str
    subject: str | None
    reason: str
    attempts: int
    at: float
    generation: int = 0
    notification: Notification | None = None  # None: an outbox record that did not decode


class ReplayRequest(msgspec.Struct, kw_only=True):
    notification: Notification
    at: float


def state_key(subject: str, key: str) -> str:
    return subject_key(subject, "notify:" + escape_key_part(key))


def member(subject: str, key: str) -> bytes:
    return _encoder.encode([subject, key])


def parse_member(raw: bytes) -> tuple[str, str] | None:
    try:
        subject, key = msgspec.json.decode(raw, type=tuple[str, str])
    except msgspec.DecodeError:
        return None
    return subject, key


def decode_state(raw: bytes | None) -> Scheduled | None:
    if raw is None:
        return None
    try:
        return msgspec.json.decode(raw, type=Scheduled)
    except msgspec.DecodeError:
        return None


async def load_state(store: Store, subject: str, key: str) -> Scheduled | None:
    return decode_state(await store.get(state_key(subject, key)))


async def save_state(store: Store, state: Scheduled) -> None:
    n = state.notification
    await store.set(state_key(n.subject, n.key), _encoder.encode(state), ttl=DEDUP_SECONDS)


async def dead_letters(store: Store) -> list[DeadLetter]:
    """The notifications that are dead now (the newest record of each; replayed ones that are
    pending or sent again are left out), oldest first."""
    newest: dict[str, DeadLetter] = {}
    after = "0"
    while True:
        entries = await store.log_read(DEAD_LOG, after=after, count=1000)
        for entry in entries:
            try:
                letter = msgspec.json.decode(entry.data, type=DeadLetter)
            except msgspec.DecodeError:
                continue
            newest[letter.key] = letter
        if len(entries) < 1000:
            break
        after = entries[-1].position
    letters = list(newest.values())
    states = await store.get_many(
        [state_key(x.subject, x.key) if x.subject and x.notification else "" for x in letters]
    )
    current = []
    for letter, raw in zip(letters, states, strict=True):
        if letter.notification is None:
            current.append(letter)  # an undecodable record: nothing to replay, still listed
            continue
        state = decode_state(raw)
        if state is not None and state.status == "dead" and state.generation == letter.generation:
            current.append(letter)
    return sorted(current, key=lambda x: x.at)


async def request_replay(store: Store, letters: list[DeadLetter], at: float) -> int:
    """Ask the active sender to send these dead letters again (attempts start over)."""
    records = [
        LogRecord(_encoder.encode(ReplayRequest(notification=x.notification, at=at)), x.subject)
        for x in letters
        if x.notification is not None
    ]
    if records:
        await store.log_append(REPLAY_LOG, records)
    return len(records)


def encode_dead(letter: DeadLetter) -> bytes:
    return _encoder.encode(letter)


def decode_replay(data: bytes) -> ReplayRequest | None:
    try:
        return msgspec.json.decode(data, type=ReplayRequest)
    except msgspec.DecodeError:
        return None


def encode_state(state: Scheduled) -> bytes:
    return _encoder.encode(state)


__all__ = [
    "CONSUMER",
    "DEAD_LOG",
    "GROUP",
    "PENDING_SET",
    "REPLAY_LOG",
    "DeadLetter",
    "ReplayRequest",
    "Scheduled",
    "dead_letters",
    "decode_state",
    "load_state",
    "member",
    "parse_member",
    "request_replay",
    "save_state",
    "state_key",
]
