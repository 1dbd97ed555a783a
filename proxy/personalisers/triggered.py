"""The triggered-campaigns step: first in precedence, in place but serving nothing yet.

A trigger (``trigger ... show campaign NAME``) shows a campaign to a user whose behaviour
fired it; such a campaign outranks every other personalisation of the response. The step runs
when the policy set has triggers, before the campaigns step, and does not decide anything yet:
the campaigns a trigger names are served by the campaigns step, as every campaign is.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from slotwise.dsl.precedence import TRIGGERED

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledPolicySet
    from slotwise.dsl.location import Location
    from slotwise.proxy.decide import Engine
    from slotwise.proxy.exchange import Exchange


class TriggeredCampaigns:
    """The campaigns the policy's triggers show (none served yet)."""

    kind = TRIGGERED

    def wanted(self, policy: CompiledPolicySet) -> bool:
        return bool(policy.triggers)

    def locations(self, policy: CompiledPolicySet) -> Iterator[tuple[str, Location]]:
        return iter(())  # what it will write is the shown campaigns' slots

    def personalise(self, engine: Engine, exchange: Exchange) -> None:
        return None
