"""The msgspec types of the decisions log's stored form (slotwise.proxy.decision_codec).

They live apart from ``decision_codec``, whose encoding runs on every decision and is compiled
with mypyc (slotwise/native.py): msgspec misreads the annotations of a Struct defined in a
compiled module, so the Structs stay in this pure module.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from slotwise.proxy.decision_records import LogValue

Ext = msgspec.msgpack.Ext
Choices = list[tuple[str, tuple[str, ...]]]


class Stored1(msgspec.Struct, frozen=True, array_like=True, tag=1):  # tag: decision_codec._FORMAT
    """Format 1 (the tag is the array's first element): DecisionRecord's fields in order."""

    id: str
    ts: float
    campaign: str
    policy_version: str
    model_version: str
    holdout: bool
    holdout_share: float
    personal: bool
    signal_names: tuple[int | str, ...]  # a built-in signal's index in SIGNAL_NAMES, or a name
    signal_values: tuple[LogValue, ...]
    slots: list[tuple[str, str | None, float, tuple[str, ...]]]
    eligible: Choices | None  # None: one entry per slot, its candidates
    outcome: tuple[float, float, float, float, float] | None
    format: str | None
    fail_open: str | None
    trigger: str | None
    trigger_offer: str | None
    offer: str | None
    removed: Choices


Index = Annotated[int, msgspec.Meta(ge=0)]


class Stored2(msgspec.Struct, frozen=True, array_like=True, tag=2):
    """Format 2: format 1 with coded values, hexadecimal ids as bytes, variants as indexes
    and uniform probabilities left out (see decision_codec's docstring)."""

    id: Any  # str, or bytes: the id's hexadecimal digits (msgspec has no str | bytes)
    ts: float
    campaign: str
    policy_version: Any  # as id
    model_version: str
    holdout: bool
    holdout_share: float
    personal: bool
    signal_names: tuple[int | str, ...]
    signal_values: tuple[LogValue | Ext, ...]  # Ext: a coded value (decision_codec)
    # (slot, variant: its index among the candidates or itself, probability: None when one
    # over the number of candidates, candidates)
    slots: list[tuple[str, Index | str | None, float | None, tuple[str, ...]]]
    eligible: Choices | None
    outcome: tuple[float, float, float, float, float] | None
    format: str | None
    fail_open: str | None
    trigger: str | None
    trigger_offer: str | None
    offer: str | None
    removed: Choices


class StoredTime(msgspec.Struct, array_like=True):
    """The leading fields of the stored form, for readers that skip by time."""

    tag: int
    id: Any  # str, or bytes (format 2)
    ts: float


class JsonTime(msgspec.Struct):
    ts: float = 0.0
