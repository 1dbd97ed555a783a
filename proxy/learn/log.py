"""The decision log format: JSON Lines, one record per line, documented in docs/learning.md.

Three record types, told apart by ``type``:

``decision``  what the proxy chose for one request of one campaign: the one
    :class:`~slotwise.proxy.decision_log.DecisionRecord` type the proxy writes (its module
    docstring shows the fields and says how a holdout decision is logged). ``probability`` is
    the chance the variant was drawn with, after the rules (the candidates are the choice set
    the rules left): in (0, 1] for a served variant, else in [0, 1]; ``holdout_share`` is in
    [0, 1] and above 0 for a holdout decision. ``signals`` are those the decision read: without
    consent, nothing personal. A decision converted from another system may carry its result
    inline as ``"outcome": {"clicks": 1, "conversions": 0, "revenue": 0.0}``.

``reward``    an event that came back for a decision::

    {"type": "reward", "decision_id": "d-1", "ts": 1763790012.5, "event": "click", "value": 0}

    ``event`` is click, conversion (``value`` = its revenue), revenue or discount_cost.

``joined``    written by the reward join: a decision with its outcome and reward::

    {"type": "joined", "decision": {...}, "outcome": {...}, "reward": 1.0, "rewarded": true}
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import msgspec

from slotwise.proxy.bandit.errors import BanditError
from slotwise.proxy.decision_log import DecisionRecord, OutcomeRecord


class RewardRecord(msgspec.Struct, frozen=True, tag="reward", tag_field="type"):
    decision_id: str
    ts: float
    event: Literal["click", "conversion", "revenue", "discount_cost"]
    value: float = 0.0


class JoinedRecord(msgspec.Struct, frozen=True, tag="joined", tag_field="type"):
    decision: DecisionRecord
    outcome: OutcomeRecord
    reward: float
    rewarded: bool


LogRecord = DecisionRecord | RewardRecord | JoinedRecord

_DECODER: msgspec.json.Decoder[LogRecord] = msgspec.json.Decoder(LogRecord)
_ENCODER = msgspec.json.Encoder()
_BOM = b"\xef\xbb\xbf"


def encode(record: LogRecord) -> bytes:
    """One JSON line (without the newline)."""
    return _ENCODER.encode(record)


def decode(line: bytes | str, where: str = "<log>") -> LogRecord:
    """One record, or a BanditError naming the line and what is wrong with it."""
    try:
        record: LogRecord = _DECODER.decode(line)
    except msgspec.ValidationError as exc:
        raise BanditError("bad_log_record", f"{where}: {exc}") from exc
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BanditError("bad_log_record", f"{where}: not a JSON object ({exc})") from exc
    decision = record.decision if isinstance(record, JoinedRecord) else record
    problem = _decision_problem(decision) if isinstance(decision, DecisionRecord) else None
    if problem is not None:
        raise BanditError("bad_log_record", f"{where}: {problem}")
    return record


def _decision_problem(record: DecisionRecord) -> str | None:
    """What makes a well-typed decision unusable: a propensity that is no probability.

    Evaluation divides by the propensity and the learner weighs by it, so a 0 would be a
    division by zero or a silently ignored decision, and a value above 1 a wrong estimate.
    """
    if not 0.0 <= record.holdout_share <= 1.0:
        return f"holdout_share {record.holdout_share} must be a share in [0, 1]"
    if record.holdout and record.holdout_share == 0.0:
        return "a holdout decision needs its holdout_share (> 0): it is its propensity"
    for slot in record.slots:
        served = slot.variant is not None
        if not (0.0 < slot.probability <= 1.0 if served else 0.0 <= slot.probability <= 1.0):
            chance = "(0, 1] (the chance the variant was drawn with)" if served else "[0, 1]"
            return f"slot {slot.slot}: probability {slot.probability} must be in {chance}"
    return None


def read_log(path: Path) -> Iterator[LogRecord]:
    """Every record of a JSONL log file; a bad line stops with its line number."""
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise BanditError("unreadable_log", f"{path}: cannot open ({exc.strerror})") from exc
    with stream:
        for number, line in enumerate(stream, start=1):
            if number == 1:
                line = line.removeprefix(_BOM)  # editors on Windows start UTF-8 files with one
            if line.strip():
                yield decode(line, f"{path}:{number}")


def write_log(path: Path, records: Iterable[LogRecord]) -> int:
    """Append records to a JSONL file; returns how many were written."""
    count = 0
    with path.open("ab") as stream:
        for record in records:
            stream.write(encode(record) + b"\n")
            count += 1
    return count


__all__ = [
    "JoinedRecord",
    "LogRecord",
    "RewardRecord",
    "decode",
    "encode",
    "read_log",
    "write_log",
]
