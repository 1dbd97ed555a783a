"""The decision record's types (slotwise.proxy.decision_log documents the record).

They live apart from ``decision_log``, whose functions run on every decision and are compiled
with mypyc (slotwise/native.py): msgspec misreads the annotations of a Struct defined in a
compiled module, so the Structs stay in this pure module. ``decision_log`` re-exports them.
"""

from __future__ import annotations

import msgspec

# list-valued signals are tuples, in memory and decoded alike (msgspec reads arrays into them)
LogValue = str | int | float | bool | tuple[str, ...]


class SlotRecord(msgspec.Struct, frozen=True):
    """One slot of a decision: the variant served (None: left as it was) and its chance."""

    slot: str
    variant: str | None
    probability: float
    candidates: tuple[str, ...] = ()


class OutcomeRecord(msgspec.Struct, frozen=True):
    """What came back for a decision (a converted log may carry it inline)."""

    clicks: float = 0.0
    conversions: float = 0.0
    revenue: float = 0.0
    discount_cost: float = 0.0
    margin: float = 0.0  # the items' margins less the discount (offer sets: offer_money)


class DecisionRecord(msgspec.Struct, frozen=True, kw_only=True, tag="decision", tag_field="type"):
    """What was decided for one response of one campaign (see the module docstring)."""

    id: str
    ts: float
    campaign: str
    policy_version: str = ""
    model_version: str = ""
    holdout: bool = False
    holdout_share: float = 0.0
    personal: bool = False
    signals: dict[str, LogValue] = {}
    slots: list[SlotRecord] = []
    eligible: dict[str, tuple[str, ...]] = {}
    outcome: OutcomeRecord | None = None
    format: str | None = None  # json, openrtb, vast (written by the proxy)
    fail_open: str | None = None  # why a decided response went out unchanged, if it did
    trigger: str | None = None  # the trigger that showed this campaign (triggered campaigns)
    trigger_offer: str | None = None  # the ladder's offer arm written with it (OfferArm.name)
    # offer sets (slotwise.proxy.offer_set): the offer id written, and per arm the guards
    # (or ``budget_spent``) that removed it from the choice
    offer: str | None = None
    removed: dict[str, tuple[str, ...]] = {}

    @property
    def propensity(self) -> float:
        """Probability of the logged outcome under the logging policy (holdout included)."""
        if self.holdout:
            return self.holdout_share
        product = 1.0 - self.holdout_share
        for slot in self.slots:
            product *= slot.probability
        return product
