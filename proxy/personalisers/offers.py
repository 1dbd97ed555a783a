"""The offers step: offer sets (``offers NAME { slot at ... }``), whose offer a bandit will
choose among the arms the guards allow and write at the set's location.

The step is in place at its precedence and runs when the policy set has offers; it decides
nothing yet and writes nothing. The locations it will write are declared already
(``locations``), so the proxy knows which of them another personalisation writes too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from slotwise.dsl.precedence import OFFERS

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledPolicySet
    from slotwise.dsl.location import Location
    from slotwise.proxy.decide import Engine
    from slotwise.proxy.exchange import Exchange


class Offers:
    """The policy set's offer sets (none served yet)."""

    kind = OFFERS

    def wanted(self, policy: CompiledPolicySet) -> bool:
        return bool(policy.offers)

    def locations(self, policy: CompiledPolicySet) -> Iterator[tuple[str, Location]]:
        for item in policy.offers:
            if item.location is not None:
                yield item.name, item.location

    def personalise(self, engine: Engine, exchange: Exchange) -> None:
        return None
