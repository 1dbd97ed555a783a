"""The personalisation steps of one response, in their declared precedence.

A :class:`Personaliser` looks at the exchange's parsed document, the request's signals and the
compiled policy snapshot, and may write slots, add trackers and append decision records. The
steps run in the order of slotwise.dsl.precedence.PRECEDENCE, the one place it is declared:

1. triggered campaigns (:mod:`.triggered`: a firing trigger's campaign, with its offer);
2. campaigns, in policy order (:mod:`.campaigns`; a campaign's slots that take an offer set's
   text are decided with it, :mod:`.offer_creatives`);
3. offers (:mod:`.offers`: an offer set's offer at its place in storefront JSON);
4. recommendations, 5. re-ranks (:mod:`.recommendations`, :mod:`.reranks`: product lists
   filled and reordered, with a catalogue; what they read is prepared before engine time,
   slotwise.proxy.recommend.runtime).

The rules every step keeps (docs/language-guide.md, "Several personalisations on one
response"):

- several personalisations may apply to one response: one per ad unit of an OpenRTB response
  or VAST document, and several on one unit or one storefront JSON document (a hero campaign
  and a cart banner on one home page), each decided in precedence order;
- never two on one slot location of a unit: the first to decide there claims the location
  (held-out decisions too: their users must see the upstream's answer), and a later one that
  needs a claimed location is skipped on that unit, counted
  (``slotwise_campaigns_skipped_total{reason="contested"}``);
- a campaign whose slots are not all in the unit is skipped there, counted
  (``reason="missing_slot"``); nothing is decided for it, so nothing is logged;
- anything else that goes wrong raises :class:`~slotwise.proxy.exchange.FailOpen`: the whole
  response goes out as the upstream sent it, the decisions taken so far logged as not served.

Which steps run, and which locations more than one personalisation writes (only those are
claimed and checked), is worked out once per policy snapshot (:class:`Pipeline`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from slotwise.dsl.precedence import PRECEDENCE
from slotwise.proxy.personalisers.campaigns import Campaigns
from slotwise.proxy.personalisers.offers import Offers
from slotwise.proxy.personalisers.recommendations import Recommendations
from slotwise.proxy.personalisers.reranks import Reranks
from slotwise.proxy.personalisers.triggered import TriggeredCampaigns

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledPolicySet
    from slotwise.dsl.location import Location
    from slotwise.proxy.decide import Engine
    from slotwise.proxy.exchange import Exchange


class Personaliser(Protocol):
    """One step: a kind of personalisation (a name of ``PRECEDENCE``) and how to run it."""

    @property
    def kind(self) -> str: ...

    def wanted(self, policy: CompiledPolicySet) -> bool:
        """Whether the policy set has anything for this step (else it is not run)."""
        ...

    def locations(self, policy: CompiledPolicySet) -> Iterable[tuple[str, Location]]:
        """(name, location) of every slot location this step's personalisations write."""
        ...

    def personalise(self, engine: Engine, exchange: Exchange) -> None:
        """Decide for the exchange's document: write, claim, track, append records."""
        ...


# the built-in steps; a Pipeline orders them by PRECEDENCE
STEPS: Sequence[Personaliser] = (
    TriggeredCampaigns(),
    Campaigns(),
    Offers(),
    Recommendations(),
    Reranks(),
)


@dataclass(frozen=True, slots=True)
class Plan:
    """What one policy set asks of the steps: which run, which locations are shared."""

    steps: tuple[Personaliser, ...]
    shared: frozenset[Location]  # written by more than one personalisation


class Pipeline:
    """The steps in precedence order, and the plan of the policy set being served.

    The plan is remembered for the snapshot it was made from (a new snapshot is a new object);
    touched only from the event loop's thread, like slotwise.proxy.early_signals.
    """

    def __init__(self, steps: Iterable[Personaliser] = STEPS) -> None:
        self.steps = tuple(sorted(steps, key=lambda step: PRECEDENCE.index(step.kind)))
        self._policy: CompiledPolicySet | None = None
        self._plan = Plan((), frozenset())

    def plan(self, policy: CompiledPolicySet) -> Plan:
        """The steps this policy set needs and the locations they share."""
        if policy is not self._policy:
            steps = tuple(step for step in self.steps if step.wanted(policy))
            writers = Counter(
                location
                for location, _ in {
                    (location, (step.kind, name))
                    for step in steps
                    for name, location in step.locations(policy)
                }
            )
            shared = frozenset(location for location, count in writers.items() if count > 1)
            self._plan = Plan(steps, shared)
            self._policy = policy
        return self._plan


__all__ = ["Personaliser", "Pipeline", "Plan", "STEPS"]
