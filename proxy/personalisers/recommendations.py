"""The recommendations step: ``recommend NAME at ...``, a product list filled from a strategy
(trending, last visit, also bought, also viewed).

The step is in place at its precedence and runs when the policy set has recommendations; it decides
nothing yet and writes nothing. The locations it will write are declared already
(``locations``), so the proxy knows which of them another personalisation writes too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from slotwise.dsl.precedence import RECOMMENDATION

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledPolicySet
    from slotwise.dsl.location import Location
    from slotwise.proxy.decide import Engine
    from slotwise.proxy.exchange import Exchange


class Recommendations:
    """The policy set's recommendations (none served yet)."""

    kind = RECOMMENDATION

    def wanted(self, policy: CompiledPolicySet) -> bool:
        return bool(policy.recommendations)

    def locations(self, policy: CompiledPolicySet) -> Iterator[tuple[str, Location]]:
        for item in policy.recommendations:
            if item.location is not None:
                yield item.name, item.location

    def personalise(self, engine: Engine, exchange: Exchange) -> None:
        return None
