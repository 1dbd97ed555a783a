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

    ``event`` is click, conversion (``value`` = its revenue), revenue, discount_cost or margin.
    A click counts one toward ``clicks``; its ``value`` is not read.

``joined``    written by the reward join: a decision with its outcome and reward::

    {"type": "joined", "decision": {...}, "outcome": {...}, "reward": 1.0, "rewarded": true}

Decoding ignores keys no field reads (a newer writer may add some); :func:`unknown_fields`
lists them, for readers that must not guess (``slotwise evaluate``: slotwise.lab.evaluation_log).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import msgspec

from slotwise.proxy.bandit.errors import BanditError
from slotwise.proxy.decision_codec import decode_stored, is_compact
from slotwise.proxy.decision_log import DecisionRecord, OutcomeRecord, SlotRecord


class RewardRecord(msgspec.Struct, frozen=True, tag="reward", tag_field="type"):
    decision_id: str
    ts: float
    event: Literal["click", "conversion", "revenue", "discount_cost", "margin"]
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
    """One record, or a BanditError naming the line and what is wrong with it.

    Also reads a decision in the compact form the store's decisions log holds
    (slotwise.proxy.decision_codec), so store readers and file readers check alike.
    """
    try:
        if isinstance(line, bytes) and is_compact(line):
            try:
                record: LogRecord = decode_stored(line)
            except msgspec.DecodeError as exc:
                raise BanditError(
                    "bad_log_record", f"{where}: not a stored decision ({exc})"
                ) from exc
        else:
            record = _DECODER.decode(line)
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


def read_lines(path: Path) -> Iterator[tuple[str, bytes]]:
    """Every non-blank line of a JSONL log file with where it is (``path:line``)."""
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise BanditError("unreadable_log", f"{path}: cannot open ({exc.strerror})") from exc
    with stream:
        for number, line in enumerate(stream, start=1):
            if number == 1:
                line = line.removeprefix(_BOM)  # editors on Windows start UTF-8 files with one
            if line.strip():
                yield f"{path}:{number}", line


def read_log(path: Path) -> Iterator[LogRecord]:
    """Every record of a JSONL log file; a bad line stops with its line number."""
    for where, line in read_lines(path):
        yield decode(line, where)


def record_time(record: LogRecord) -> float:
    """When a record happened: a decision's or reward's ``ts``, a joined record's decision's."""
    return record.decision.ts if isinstance(record, JoinedRecord) else record.ts


def read_logs(paths: Sequence[Path]) -> Iterator[LogRecord]:
    """Every record of several JSONL logs, merged by time; each file in time order, as
    ``slotwise export`` writes them, so a decisions export and an events export read as one
    log, whichever comes first. A bad line stops with its file and line number."""
    if len(paths) == 1:
        return read_log(paths[0])
    return heapq.merge(*(read_log(path) for path in paths), key=record_time)


def _field_names(cls: type[msgspec.Struct]) -> frozenset[str]:
    return frozenset(f.encode_name for f in msgspec.structs.fields(cls)) | {"type"}


_DECISION_FIELDS = _field_names(DecisionRecord)
_SLOT_FIELDS = _field_names(SlotRecord) - {"type"}
_OUTCOME_FIELDS = _field_names(OutcomeRecord) - {"type"}
_REWARD_FIELDS = _field_names(RewardRecord)
_JOINED_FIELDS = _field_names(JoinedRecord)


def unknown_fields(line: bytes | str) -> list[str]:
    """JSON paths of the keys of a record line that no field of its record type reads, in
    order (``$.outcome.click``, ``$.slots[0].propensity``); decoding ignores them, so a
    misspelt key is silently a default. [] for a line that is no object (decode refuses it)."""
    try:
        data = msgspec.json.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return []
    if not isinstance(data, dict):
        return []
    kind = data.get("type")
    if kind == "reward":
        return _unknown(data, _REWARD_FIELDS, "$")
    if kind == "joined":
        found = _unknown(data, _JOINED_FIELDS, "$")
        if isinstance(data.get("decision"), dict):
            found += _decision_unknown(data["decision"], "$.decision")
        if isinstance(data.get("outcome"), dict):
            found += _unknown(data["outcome"], _OUTCOME_FIELDS, "$.outcome")
        return found
    return _decision_unknown(data, "$")


def _decision_unknown(data: dict[str, object], path: str) -> list[str]:
    found = _unknown(data, _DECISION_FIELDS, path)
    slots = data.get("slots")
    if isinstance(slots, list):
        for i, slot in enumerate(slots):
            if isinstance(slot, dict):
                found += _unknown(slot, _SLOT_FIELDS, f"{path}.slots[{i}]")
    outcome = data.get("outcome")
    if isinstance(outcome, dict):
        found += _unknown(outcome, _OUTCOME_FIELDS, f"{path}.outcome")
    return found


def _unknown(data: dict[str, object], known: frozenset[str], path: str) -> list[str]:
    return [f"{path}.{key}" for key in data if key not in known]


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
    "read_lines",
    "read_log",
    "read_logs",
    "record_time",
    "unknown_fields",
    "write_log",
]
