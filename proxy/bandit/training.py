"""What a model version learned from, so that offline evaluation can tell a log it was trained on.

A model evaluated on the decisions it learned from looks far better than it is (it has seen
their rewards). Each version's metadata therefore records its lineage's training decisions,
its own and its parents' (:class:`TrainingData`): their time range and a sample of their ids
chosen by hash. An id is in the sample when the low ``bits`` bits of its 64-bit BLAKE2b hash are
zero; the sample keeps at most :data:`SAMPLE_LIMIT` hashes, and when it would hold more,
``bits`` grows by one and the hashes that no longer qualify go. So the sample is always the
same uniform share (1 in ``2**bits``) of every id learned, whatever the lineage's size, and
another log's ids sampled by the same rule estimate how much of that log the model learned
from: an id is in both samples or in neither (:func:`overlap`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass

SAMPLE_LIMIT = 4096  # hashes kept per version: about 90 KB of metadata at most
_MAX_BITS = 64


def id_hash(decision_id: str) -> int:
    """The 64-bit hash that decides whether a decision id is sampled."""
    digest = hashlib.blake2b(decision_id.encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "little")


@dataclass(frozen=True, slots=True)
class TrainingData:
    """A model lineage's training decisions, as its metadata records them.

    ``complete`` is False when an ancestor version recorded nothing (published before slotwise
    kept this record): the sample then covers only what was learned since.
    """

    first_ts: float | None = None
    last_ts: float | None = None
    bits: int = 0
    sample: tuple[int, ...] = ()
    complete: bool = True

    def problem(self) -> str | None:
        """What makes a decoded record unusable, or None."""
        if not 0 <= self.bits <= _MAX_BITS:
            return f"training.bits {self.bits} must be from 0 to {_MAX_BITS}"
        if len(self.sample) > SAMPLE_LIMIT:
            return f"training.sample holds {len(self.sample)} hashes, more than {SAMPLE_LIMIT}"
        mask = (1 << self.bits) - 1
        if any(not 0 <= h < 1 << 64 or h & mask for h in self.sample):
            return "training.sample holds a hash that its sampling rule (bits) excludes"
        times = [t for t in (self.first_ts, self.last_ts) if t is not None]
        if any(not math.isfinite(t) for t in times):
            return "training.first_ts and last_ts must be times"
        return None


class TrainingRecorder:
    """Accumulates one lineage's training decisions (the learner keeps one per campaign)."""

    def __init__(self, start: TrainingData | None = None, *, complete: bool = True) -> None:
        start = start or TrainingData()
        self.first_ts = start.first_ts
        self.last_ts = start.last_ts
        self.bits = start.bits
        self.complete = complete and start.complete
        self._sample = set(start.sample)

    def add(self, decision_id: str, ts: float) -> None:
        """Record one decision the model learned from."""
        self.first_ts = ts if self.first_ts is None else min(self.first_ts, ts)
        self.last_ts = ts if self.last_ts is None else max(self.last_ts, ts)
        hashed = id_hash(decision_id)
        if hashed & ((1 << self.bits) - 1):
            return
        self._sample.add(hashed)
        while len(self._sample) > SAMPLE_LIMIT and self.bits < _MAX_BITS:
            self.bits += 1
            mask = (1 << self.bits) - 1
            self._sample = {h for h in self._sample if not h & mask}

    def data(self) -> TrainingData:
        """The record to publish with a version."""
        return TrainingData(
            self.first_ts, self.last_ts, self.bits, tuple(sorted(self._sample)), self.complete
        )


@dataclass(frozen=True, slots=True)
class Overlap:
    """How much of a log a model learned from, estimated from the id sample."""

    decisions: int  # the log's decisions compared
    sampled: int  # of those, ids the sampling rule selects
    learned: int  # of the sampled, ids the model learned from
    bits: int

    @property
    def share(self) -> float | None:
        """Estimated share of the log's decisions the model learned from (None: no sample)."""
        return self.learned / self.sampled if self.sampled else None


def overlap(data: TrainingData, decision_ids: Iterable[str]) -> Overlap:
    """Compare a log's decision ids with a model's training sample."""
    mask = (1 << data.bits) - 1
    learned_ids = frozenset(data.sample)
    decisions = sampled = learned = 0
    for decision_id in decision_ids:
        decisions += 1
        hashed = id_hash(decision_id)
        if hashed & mask:
            continue
        sampled += 1
        learned += hashed in learned_ids
    return Overlap(decisions, sampled, learned, data.bits)
