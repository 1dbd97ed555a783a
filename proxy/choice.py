"""What a chooser decided for one campaign and one request: one type for every chooser.

The rule chooser (slotwise.proxy.chooser) and the bandit (slotwise.proxy.bandit) both return a
:class:`Choice`; the request path applies it and ``slotwise.proxy.decision_log.decision_record``
logs it. Named tuples, because one is built on every decision and they are much cheaper to
create than frozen dataclasses.

Every choice lists every slot of the campaign, in the campaign's order, with its choice set
(``candidates``: what the rules left, pin > prefer > allowed). A served slot has its
``variant`` and the ``probability`` it was drawn with, in (0, 1]; a slot with nothing eligible
has variant None and probability 1 (it keeps the upstream content).

A holdout choice (``holdout`` True: the user is in the campaign's control group and gets the
upstream response untouched) chooses nothing: every slot has variant None and probability 1,
and still its choice set, so that offline evaluation can say what another policy would have
done for this control user. ``holdout_share`` is the campaign's holdout share for every
choice, holdout or not: it is part of the propensity of what was logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from slotwise.types import SignalValue


class SlotChoice(NamedTuple):
    """One slot: the variant chosen (None: the slot keeps its upstream content), the
    probability it was drawn with, and the choice set it was drawn from."""

    slot: str
    variant: str | None
    probability: float
    candidates: tuple[str, ...]


class Choice(NamedTuple):
    """A chooser's answer for one campaign and request: everything the log needs.

    ``model_version`` is ``rules`` for the rule chooser, the model's version (``v7``) for the
    bandit. ``personal`` says whether personal data may shape the decision: personal consent,
    and not a new user (what the learner reads to rebuild the decision's features).
    ``signals`` are the signals the decision read, never anything personal without consent.
    """

    campaign: str
    model_version: str
    holdout: bool
    holdout_share: float
    personal: bool
    choices: tuple[SlotChoice, ...]
    signals: Mapping[str, SignalValue]

    def variant(self, slot: str) -> str | None:
        """The variant chosen for ``slot`` (None: none, or no such slot)."""
        for choice in self.choices:
            if choice.slot == slot:
                return choice.variant
        return None

    @property
    def propensity(self) -> float:
        """Probability of the whole logged outcome (the holdout draw included)."""
        if self.holdout:
            return self.holdout_share
        product = 1.0 - self.holdout_share
        for choice in self.choices:
            product *= choice.probability
        return product
