"""Refuse to evaluate a model on decisions it learned from.

A model scored on its own training decisions has seen their rewards: its estimates come out
far too high (38-42x the real click rate in one report). A model version's metadata records its
lineage's training decisions as a hash sample of their ids (slotwise.proxy.bandit.training);
the log's served decisions, sampled by the same rule, show how many of them it learned from.
Any such decision stops ``slotwise evaluate`` (``training_log``) unless ``--allow-training-log``
is given, and then every output says so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from slotwise.proxy.bandit.errors import BanditError
from slotwise.proxy.bandit.store import ModelInfo
from slotwise.proxy.bandit.training import Overlap, overlap
from slotwise.proxy.learn.log import JoinedRecord


@dataclass(frozen=True, slots=True)
class TrainingCheck:
    """What the comparison of a model's training record with the log found."""

    model: str  # campaign and version, "spring_sale v3"
    overlap: Overlap | None  # None: the model records no training data
    warning: str | None  # for the output, when something is off but evaluation goes on

    def as_dict(self) -> dict[str, object]:
        found = self.overlap
        return {
            "model": self.model,
            "recorded": found is not None,
            "compared": found.decisions if found else 0,
            "sampled": found.sampled if found else 0,
            "learned": found.learned if found else 0,
            "share": found.share if found else None,
            "warning": self.warning,
        }


def check_training_log(
    info: ModelInfo, records: Sequence[JoinedRecord], *, allow: bool
) -> TrainingCheck:
    """Compare the model's training record with the log's served decisions; raises
    ``training_log`` when it learned from some of them and ``allow`` is False."""
    model = f"{info.campaign} {info.label}"
    if info.training is None:
        return TrainingCheck(
            model,
            None,
            f"model {model} records no training data (published before slotwise recorded it):"
            " it cannot be checked that it did not learn from this log",
        )
    served = [j.decision.id for j in records if not j.decision.holdout]
    found = overlap(info.training, served)
    if found.learned:
        share = found.share or 0.0
        trained = info.training
        since = (
            f" after {_iso(trained.last_ts)} (`slotwise export decisions --since"
            f" {_iso(math.floor(trained.last_ts) + 1)}`)"
            if trained.last_ts is not None
            else " it did not learn from"
        )
        what = (
            f"model {model} learned from decisions of this log (about {share:.0%} of its"
            f" {found.decisions} served decisions, from a 1-in-{1 << found.bits} sample of"
            f" ids: {found.learned} of {found.sampled}); its estimates on them are biased"
            " upwards, as it has seen their rewards"
        )
        if not allow:
            raise BanditError(
                "training_log",
                f"{what}. Evaluate it on decisions logged{since}, or pass"
                " --allow-training-log to evaluate anyway",
            )
        return TrainingCheck(model, found, f"{what} (--allow-training-log)")
    if found.sampled == 0 and found.decisions:
        return TrainingCheck(
            model,
            found,
            f"cannot tell whether model {model} learned from this log: none of its"
            f" {found.decisions} served decisions falls in the model's 1-in-{1 << found.bits}"
            " sample of training ids",
        )
    if not info.training.complete:
        return TrainingCheck(
            model,
            found,
            f"model {model} continues a version that recorded no training data: only what it"
            " learned since could be checked against this log",
        )
    return TrainingCheck(model, found, None)


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
