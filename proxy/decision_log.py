"""The decision record the proxy logs for every campaign decision.

The format is the one in slotwise.proxy.learn.log (``type: decision``), plus ``eligible`` (per
slot, the variants the rules left), ``format`` (json, openrtb, vast) and ``fail_open`` (null, or
the cause when a decided response went out unchanged; such a record has no ``slots``, since
nothing was served, and learners skip it). Records are queued on
slotwise.proxy.events.DecisionLog, which appends them to the store's ``decisions`` log in
batches off the request path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

_encoder = msgspec.json.Encoder()


def encode_record(record: dict[str, Any]) -> bytes:
    return _encoder.encode(record)


def decision_record(
    *,
    decision_id: str,
    ts: float,
    policy_version: str,
    choice: Any,
    format: str,
    fail_open: str | None,
) -> dict[str, Any]:
    """A ``type: decision`` record (slotwise.proxy.learn.log) of a chooser's choice."""
    # tuples (list signals, candidates) stay tuples: msgspec writes them as the same arrays
    signals = dict(choice.signals)
    slots: Sequence[Any] = choice.choices
    return {
        "type": "decision",
        "id": decision_id,
        "ts": ts,
        "campaign": choice.campaign,
        "policy_version": policy_version,
        "model_version": choice.model_version,
        "holdout": choice.holdout,
        "holdout_share": choice.holdout_share,
        "personal": choice.personal,
        "signals": signals,
        "slots": [
            {
                "slot": pick.slot,
                "variant": pick.variant,
                "probability": pick.probability,
                "candidates": pick.candidates,
            }
            for pick in slots
        ],
        "eligible": {pick.slot: pick.candidates for pick in slots},
        "format": format,
        "fail_open": fail_open,
    }


def unserved_record(
    decision_id: str, ts: float, policy: Any, campaign: Any, ctx: Any
) -> dict[str, Any]:
    """The record of a campaign that applied but could not be served (no choice was made)."""
    signals = {k: list(v) if isinstance(v, tuple) else v for k, v in ctx.signals.items()}
    return {
        "type": "decision",
        "id": decision_id,
        "ts": ts,
        "campaign": str(getattr(campaign, "name", "?")),
        "policy_version": str(getattr(policy, "version", "")),
        "model_version": "",
        "holdout": False,
        "holdout_share": 0.0,
        "personal": False,
        "signals": signals,
        "slots": [],
        "eligible": {},
        "format": str(ctx.signals.get("ad.format", "")),
        "fail_open": None,  # set by the caller's FailOpen
    }
