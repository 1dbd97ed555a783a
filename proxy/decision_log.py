"""The decision record: one type that the proxy writes and every reader decodes.

``DecisionRecord`` is what the proxy logs for each campaign decision and what the learner,
``slotwise evaluate``, exports and reports read back (slotwise.proxy.learn.log adds the
``reward`` and ``joined`` records of the log format; docs/learning.md documents it). On the
wire it is one JSON object with ``"type": "decision"``::

    {"type": "decision", "id": "d-1", "ts": 1763790000.0, "campaign": "spring",
     "policy_version": "3f2a...", "model_version": "v7", "holdout": false,
     "holdout_share": 0.1, "personal": true,
     "signals": {"device.type": "mobile", "user.age": 21},
     "slots": [{"slot": "headline", "variant": "h2", "probability": 0.95,
                "candidates": ["h1", "h2"]}],
     "eligible": {"headline": ["h1", "h2"]}, "format": "json", "fail_open": null}

The store's decisions log holds the same record in a compact form (slotwise.proxy.decision_codec:
an array, the built-in signals' names as numbers); exports and log files are the JSON above.

``slots`` are what was chosen, one per slot of the campaign; ``eligible`` is every slot's
choice set (what the rules left). A decision that served the upstream's creative has no
``slots`` and keeps ``eligible``: a holdout decision (``holdout: true`` is the control marker;
both choosers log it so, see slotwise.proxy.choice; its response carries its trackers, so its
events are joined like any other's) and a fail-open one (``fail_open`` is the cause). Learners
skip both; offline evaluation reads a holdout decision's choice sets from ``eligible``
(:func:`choice_sets`). The proxy queues records on slotwise.proxy.events.DecisionLog, which
appends them to the store's ``decisions`` log in batches off the request path.
"""

from __future__ import annotations

from typing import Any

import msgspec

from slotwise.proxy.choice import Choice

# the record's types live in a pure module (compiled, this one could not define them:
# slotwise/native.py); imported from here as before
from slotwise.proxy.decision_records import DecisionRecord as DecisionRecord
from slotwise.proxy.decision_records import LogValue as LogValue
from slotwise.proxy.decision_records import OutcomeRecord as OutcomeRecord
from slotwise.proxy.decision_records import SlotRecord as SlotRecord

_encoder = msgspec.json.Encoder()


def encode_record(record: DecisionRecord) -> bytes:
    return _encoder.encode(record)


def decision_record(
    choice: Choice,
    decision_id: str,
    ts: float,
    policy_version: str,
    *,
    format: str | None = None,
    fail_open: str | None = None,
) -> DecisionRecord:
    """The record of a chooser's choice (rule chooser and bandit alike): a holdout choice
    served nothing, so its record has no slots and keeps the choice sets in ``eligible``."""
    picks = choice.choices
    chosen = () if choice.holdout else picks
    return DecisionRecord(
        id=decision_id,
        ts=ts,
        campaign=choice.campaign,
        policy_version=policy_version,
        model_version=choice.model_version,
        holdout=choice.holdout,
        holdout_share=choice.holdout_share,
        personal=choice.personal,
        signals=dict(choice.signals),
        slots=[SlotRecord(p.slot, p.variant, p.probability, p.candidates) for p in chosen],
        eligible={p.slot: p.candidates for p in picks},
        format=format,
        fail_open=fail_open,
    )


def unserved_record(
    decision_id: str, ts: float, policy: Any, campaign: Any, ctx: Any
) -> DecisionRecord:
    """The record of a campaign that applied but could not be served (no choice was made)."""
    return DecisionRecord(
        id=decision_id,
        ts=ts,
        campaign=str(getattr(campaign, "name", "?")),
        policy_version=str(getattr(policy, "version", "")),
        signals=dict(ctx.signals),
        format=str(ctx.signals.get("ad.format", "")),
    )


def failed(record: DecisionRecord, cause: str) -> DecisionRecord:
    """The record of a decision whose response went out unchanged: no slots were served."""
    return msgspec.structs.replace(record, slots=[], fail_open=cause, offer=None)


def signals_of(record: DecisionRecord) -> dict[str, LogValue]:
    """The logged signals in their request-time form."""
    return dict(record.signals)


def choice_sets(record: DecisionRecord) -> list[SlotRecord]:
    """Every slot with its choice set: the logged slots, or for a holdout decision (which
    chose nothing) one slot without a variant per ``eligible`` entry. Older logs wrote a
    holdout decision's choice sets as such slots themselves: they read alike."""
    if record.slots or not record.holdout:
        return list(record.slots)
    return [SlotRecord(slot, None, 1.0, candidates) for slot, candidates in record.eligible.items()]
