"""An offer set's estimator: the exact mean reward per (context cell, arm).

An offer's reward is a purchase's revenue minus its discount: a rare event (a few visitors in
a hundred buy) worth zero or a whole order. VW's linear model, with the slowly decaying rate
tuned on clicks, keeps following the last few purchases, and in the offers simulator it did
not separate "no offer" from "free shipping" for visitors whom no offer moves in 60,000
visitors (docs/learning.md, "Offers"). A mean of every reward an arm earned in a context
does: its error shrinks as 1/sqrt(n) and nothing learned is forgotten.

- **Cells.** A cell is the combination of the request's categorical signals the model may
  use outside the user namespace (``request.utm_medium=coupons|request.page_type=cart``):
  strings, booleans and lists, never numbers (a number's every value would be a cell of its
  own; the reward is learned per hundred of the page's cart, slotwise.proxy.learn.learner), never
  personal signals (the same visitor would be a cell of one).
- **Back-off.** A cell's estimate for an arm is its mean with ``PRIOR_WEIGHT`` pseudo-examples
  at the arm's mean over all cells: a cell seen rarely (a new country, a rare medium) starts
  from what the arm earns everywhere, and its own data take over as they grow.
- **Bounded.** At most ``MAX_CELLS`` cells are kept; what a further cell learns still counts
  in the arms' overall means.
- **Exploring.** Epsilon-greedy as the offer set's ``explore epsilon P`` says (the best arm
  gets 1 - P + P/K, every other P/K; ``greedy``: P = 0), the same distribution VW's
  ``--epsilon`` gives, so decision records and offline evaluation read it alike. Other kinds
  (SquareCB, softmax, bagging) keep VW's model (slotwise.proxy.bandit.engine).

The learner keeps the sums (:class:`MeansTable`); a published model version carries them in
its metadata (``arm_means``, slotwise.proxy.bandit.store), and the proxies serve from an
immutable :class:`ArmMeans` built from them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from slotwise.proxy.bandit.features import USER, FeatureMap
from slotwise.types import Explore, Signals

MEANS_KINDS = frozenset({"epsilon", "greedy"})
PRIOR_WEIGHT = 20.0
MAX_CELLS = 4096
OVERALL = "*"
_NO_CELL = frozenset({None, USER})  # the cell that holds every cell's data: the arms' overall means


def uses_means(explore: Explore) -> bool:
    """Does an offer set exploring this way serve from the means (else from VW)?"""
    return explore.kind in MEANS_KINDS


def cell_of(signals: Signals, features: FeatureMap) -> str:
    """The request's cell: its categorical, non-personal model signals (``name=value``,
    sorted). Strings, booleans and lists make a cell; numbers do not (on the request path:
    type tests inline, one sort of the few parts)."""
    parts = []
    namespace = features.namespace
    for name, value in signals.items():
        kind = value.__class__
        if kind is str:
            text = value
        elif kind is bool:
            text = "true" if value else "false"
        elif kind is tuple:
            text = ",".join(sorted([str(item) for item in value]))  # type: ignore[union-attr]
        else:
            continue  # numbers make no cell
        if namespace(name) not in _NO_CELL:
            parts.append(f"{name}={text}")
    parts.sort()
    return "|".join(parts)


@dataclass(frozen=True, slots=True)
class MeansData:
    """The sums as a model version's metadata stores them: cell -> arm -> (count, sum)."""

    cells: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)

    def problem(self) -> str | None:
        """What makes a decoded table unusable, or None."""
        if len(self.cells) > MAX_CELLS + 1:
            return f"arm_means holds {len(self.cells)} cells, more than {MAX_CELLS + 1}"
        for cell, arms in self.cells.items():
            for arm, (count, total) in arms.items():
                if not (math.isfinite(count) and math.isfinite(total)) or count < 0:
                    return (
                        f"arm_means[{cell!r}][{arm!r}]: ({count}, {total}) is not a count and a sum"
                    )
        return None


class MeansTable:
    """The learner's running sums for one offer set (one writer: the learner)."""

    def __init__(self, data: MeansData | None = None) -> None:
        self._cells: dict[str, dict[str, list[float]]] = {
            cell: {arm: [count, total] for arm, (count, total) in arms.items()}
            for cell, arms in (data.cells.items() if data is not None else ())
        }

    def add(self, cell: str, arm: str, reward: float) -> None:
        """One joined decision: ``arm`` served in ``cell`` earned ``reward``."""
        cells = self._cells
        targets = [OVERALL]
        if cell in cells or len(cells) <= MAX_CELLS:
            targets.append(cell)
        for name in targets:
            sums = cells.setdefault(name, {}).setdefault(arm, [0.0, 0.0])
            sums[0] += 1.0
            sums[1] += reward

    def data(self) -> MeansData:
        return MeansData(
            {
                cell: {arm: (sums[0], sums[1]) for arm, sums in arms.items()}
                for cell, arms in self._cells.items()
            }
        )


def _estimates(
    cell: Mapping[str, tuple[float, float]], overall: Mapping[str, tuple[float, float]]
) -> dict[str, float]:
    """Per arm: the cell's mean backed off towards the arm's overall mean."""
    estimates: dict[str, float] = {}
    for arm, (count_all, total_all) in overall.items():
        prior = total_all / count_all if count_all > 0 else 0.0
        count, total = cell.get(arm, (0.0, 0.0))
        estimates[arm] = (total + PRIOR_WEIGHT * prior) / (count + PRIOR_WEIGHT)
    return estimates


@dataclass(frozen=True, slots=True)
class ArmMeans:
    """What a proxy serves from: per cell, the estimate of every arm (immutable)."""

    estimates: Mapping[str, Mapping[str, float]]
    overall: Mapping[str, float]

    @classmethod
    def build(cls, data: MeansData) -> ArmMeans:
        overall_sums = data.cells.get(OVERALL, {})
        overall = _estimates(overall_sums, overall_sums)
        estimates = {
            cell: MappingProxyType(_estimates(arms, overall_sums))
            for cell, arms in data.cells.items()
            if cell != OVERALL
        }
        return cls(MappingProxyType(estimates), MappingProxyType(overall))

    def values(self, cell: str) -> Mapping[str, float]:
        """Each arm's estimate in this cell (an unseen cell: the overall means)."""
        return self.estimates.get(cell, self.overall)

    def distribution(self, cell: str, names: Sequence[str], epsilon: float) -> list[float]:
        """Epsilon-greedy over ``names``: the best estimate gets 1 - epsilon + epsilon/K, every
        other epsilon/K; arms that tie for best share the 1 - epsilon (an arm never served
        counts 0, so an offer set that has learned nothing serves every arm alike, as an
        untrained VW model does, rather than its first arm nearly always)."""
        values = self.values(cell)
        estimates = [values.get(name, 0.0) for name in names]
        highest = max(estimates, default=0.0)
        best = [position for position, value in enumerate(estimates) if value == highest]
        share = epsilon / len(names)
        pmf = [share] * len(names)
        for position in best:
            pmf[position] += (1.0 - epsilon) / len(best)
        return pmf


__all__ = [
    "MAX_CELLS",
    "PRIOR_WEIGHT",
    "ArmMeans",
    "MeansData",
    "MeansTable",
    "cell_of",
    "uses_means",
]
