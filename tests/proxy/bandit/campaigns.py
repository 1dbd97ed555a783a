"""Small campaigns and rule sets that mirror the compiled-policy contract."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from slotwise.dsl.compiled import Slot, Variant
from slotwise.dsl.location import parse_location
from slotwise.proxy.bandit import BanditCampaign
from slotwise.types import Explore


@dataclass(frozen=True)
class Rules:
    """Mirrors slotwise.dsl.compiled.SlotEligibility (the compiled-policy contract)."""

    variants: tuple[str, ...]
    preferred: tuple[str, ...] = ()
    pinned: str | None = None
    boosts: Mapping[str, float] = field(default_factory=dict)


def make_campaign(
    name: str = "spring", slots: int = 3, variants: int = 10, holdout: float = 0.0
) -> BanditCampaign:
    return BanditCampaign(
        name,
        tuple(
            Slot(
                f"s{s}",
                parse_location(f"$.s{s}"),
                tuple(
                    Variant(f"s{s}v{v}", f"text {s}.{v}", {"tone": "warm" if v % 2 else "cool"})
                    for v in range(variants)
                ),
            )
            for s in range(slots)
        ),
        Explore("epsilon", 0.1),
        holdout,
    )
