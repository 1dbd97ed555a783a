"""The re-ranks step: ``rerank NAME at ... by affinity(...)``, a list of the response put in
the user's order.

The step is in place at its precedence and runs when the policy set has re-ranks; it decides
nothing yet and writes nothing. The locations it will write are declared already
(``locations``), so the proxy knows which of them another personalisation writes too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from slotwise.dsl.precedence import RERANK

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledPolicySet
    from slotwise.dsl.location import Location
    from slotwise.proxy.decide import Engine
    from slotwise.proxy.exchange import Exchange


class Reranks:
    """The policy set's re-ranks (none served yet)."""

    kind = RERANK

    def wanted(self, policy: CompiledPolicySet) -> bool:
        return bool(policy.reranks)

    def locations(self, policy: CompiledPolicySet) -> Iterator[tuple[str, Location]]:
        for item in policy.reranks:
            if item.location is not None:
                yield item.name, item.location

    def personalise(self, engine: Engine, exchange: Exchange) -> None:
        return None
