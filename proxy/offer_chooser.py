"""Which offer one visitor gets: holdout, budget, the bandit's draw, the costliest-arm cap.

:meth:`OfferChooser.choose` reads, top to bottom, for one offer set and request:

1. holdout (sticky per user with personal consent, per request without): control keeps the
   upstream's offer; the choice set is logged, nothing is chosen;
2. budget: an offer set whose daily budget is spent (slotwise.proxy.offer_budget) offers
   ``none`` only (nothing at all when ``none`` is not one of its arms);
3. the distribution over the eligible arms: the offer set's bandit model (``offers.NAME``,
   slotwise.proxy.offer_set) when the proxy runs one, else uniform; a model serving from the
   means (slotwise.proxy.bandit.arm_means) is given what each arm would cost on this cart, and
   its greedy arm is the cheapest whose mean is within ``offers.prefer_cheaper`` standard
   errors of the best;
4. the cap, while learning (until the model learned from ``offers.learning_examples``
   decisions): the costliest eligible arm (the largest expected discount for this cart) gets
   at most ``offers.max_costliest_share`` of the probability, the rest spread over the others
   in proportion; the draw, whose probability is logged.

The result is a :class:`~slotwise.proxy.choice.Choice` with one slot, ``offer``, so the
decision record, the learner and offline evaluation read it like a campaign's.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from slotwise.proxy.bandit.features import FeatureMap, uses_personal_features
from slotwise.proxy.bandit.holdout import in_holdout
from slotwise.proxy.choice import Choice, SlotChoice
from slotwise.proxy.chooser import RULES_MODEL
from slotwise.proxy.offer_set import OFFER_SLOT, arm_names, bandit_name
from slotwise.proxy.offers_config import OffersConfig
from slotwise.types import Signals, Subject

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledOffers, OfferArm
    from slotwise.proxy.bandit.runtime import BanditRuntime
    from slotwise.proxy.offer_budget import OfferBudgets

BUDGET_SPENT: Final = "budget_spent"
_NO_FEATURES = FeatureMap()


class OfferChooser:
    """Chooses offers for the proxy; built once in the app lifespan (reads snapshots only)."""

    def __init__(
        self,
        runtime: BanditRuntime | None = None,
        config: OffersConfig | None = None,
        budgets: OfferBudgets | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.runtime = runtime
        self.config = config or OffersConfig()
        self.budgets = budgets
        self._rng = rng or random.Random()
        self._features = runtime.features if runtime is not None else _NO_FEATURES
        self.cart = self.config.cart_paths()  # (value paths, count paths) of a shop's cart

    def spent(self, offers: CompiledOffers) -> bool:
        """Is the offer set's daily budget spent (as of the last refresh)?"""
        budgets = self.budgets
        return budgets is not None and offers.name in budgets.spent

    def choose(
        self,
        offers: CompiledOffers,
        arms: tuple[OfferArm, ...],
        signals: Signals,
        subject: Subject,
    ) -> Choice:
        """One offer among ``arms`` (what the guards and the budget left) for this request."""
        name = bandit_name(offers)
        rng = self._rng
        seen = model_signals(signals)
        personal = uses_personal_features(seen)
        used = self._features.usable_signals(seen, personal=personal)
        known = arm_names(offers)
        names = tuple([known[arm] for arm in arms])
        key = subject.user_id if subject.personal else None
        model = self.runtime.snapshot.models.get(name) if self.runtime is not None else None
        version = model.version if model is not None else RULES_MODEL
        holdout = offers.holdout
        if in_holdout(name, key, holdout, rng):
            picks = (SlotChoice(OFFER_SLOT, None, 1.0, names),)
            return Choice(name, version, True, holdout, personal, picks, used)
        if len(names) < 2:
            chosen = SlotChoice(OFFER_SLOT, names[0] if names else None, 1.0, names)
            return Choice(name, version, False, holdout, personal, (chosen,), used)
        if model is not None:
            pmf = model.distribution(
                seen, 0, names, personal, self._features,
                lambda: self._costs(arms, signals), self.config.prefer_cheaper,
            )  # fmt: skip
        else:
            pmf = [1.0 / len(names)] * len(names)
        share = self.config.max_costliest_share
        if share < 1.0 and (model is None or model.examples < self.config.learning_examples):
            pmf = capped(pmf, costliest(arms, signals, self.config), share)
        at = draw(pmf, rng.random())
        chosen = SlotChoice(OFFER_SLOT, names[at], pmf[at], names)
        return Choice(name, version, False, holdout, personal, (chosen,), used)

    def _costs(self, arms: Sequence[OfferArm], signals: Signals) -> list[float]:
        """What each arm would cost on this request's cart (see :func:`expected_cost`)."""
        cart, units = _cart(signals)
        shipping = self.config.shipping_cost
        return [_cost(arm, cart, units, shipping) for arm in arms]


_PAGE_CART = (("page.cart_value", "cart.value"), ("page.cart_count", "cart.count"))


def model_signals(signals: Signals) -> Signals:
    """The signals the model reads and the record logs: the profile's ``cart.value`` and
    ``cart.count`` are left out where the page states its cart (``page.cart_value``,
    ``page.cart_count``): the offers step then copied the page's numbers into both, and the
    same number twice only doubles the model's work (two user features more, and their
    crosses with every other namespace, in every arm's prediction) for nothing learnable.
    The guards still read ``cart.*``: they judge the request's context, not these."""
    if "page.cart_value" not in signals and "page.cart_count" not in signals:
        return signals
    dropped = {profile for page, profile in _PAGE_CART if page in signals}
    return {key: value for key, value in signals.items() if key not in dropped}


def _cart(signals: Signals) -> tuple[float, int]:
    """The request's cart value (0 without one) and item count (2 without one)."""
    value = signals.get("cart.value")
    cart = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
    count = signals.get("cart.count")
    units = count if isinstance(count, int) and not isinstance(count, bool) else 2
    return cart, units


def _cost(arm: OfferArm, cart: float, units: int, shipping: float) -> float:
    if arm.kind == "discount":
        return arm.discount * max(cart, 1.0)  # without a cart, the larger discount costs more
    if arm.kind == "free_shipping":
        return shipping
    if arm.kind == "bogo":
        return cart / max(units, 2)
    return 0.0


def expected_cost(arm: OfferArm, signals: Signals, config: OffersConfig) -> float:
    """What the arm would cost on this cart: a discount's share of the cart value, free
    shipping's configured cost, BOGO's average item (the cheapest is at most that)."""
    cart, units = _cart(signals)
    return _cost(arm, cart, units, config.shipping_cost)


def costliest(arms: Sequence[OfferArm], signals: Signals, config: OffersConfig) -> int:
    """The position of the arm with the largest expected cost (the first of equals)."""
    cart, units = _cart(signals)  # read once, not once per arm
    shipping = config.shipping_cost
    best, highest = 0, -1.0
    for position, arm in enumerate(arms):
        if arm.kind != "none":
            cost = _cost(arm, cart, units, shipping)
            if cost > highest:
                best, highest = position, cost
    return best


def capped(pmf: list[float], position: int, share: float) -> list[float]:
    """``pmf`` with at most ``share`` on ``position``, the excess spread over the others in
    proportion to their mass (evenly when they have none)."""
    excess = pmf[position] - share
    if excess <= 0.0 or len(pmf) < 2:
        return pmf
    others = sum(pmf) - pmf[position]
    spread = [p + (excess * p / others if others > 0 else excess / (len(pmf) - 1)) for p in pmf]
    spread[position] = share
    return spread


def draw(pmf: Sequence[float], u: float) -> int:
    """The position ``u`` (uniform in [0, 1)) falls on; rounding past the end: the last with
    mass."""
    cumulative = 0.0
    for position, probability in enumerate(pmf):
        cumulative += probability
        if u < cumulative:
            return position
    for position in range(len(pmf) - 1, -1, -1):
        if pmf[position] > 0.0:
            return position
    return len(pmf) - 1


__all__ = [
    "BUDGET_SPENT",
    "OfferChooser",
    "capped",
    "costliest",
    "draw",
    "expected_cost",
    "model_signals",
]
