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
- **Exploring.** Epsilon-greedy as the offer set's ``explore epsilon P`` says (the greedy arm
  gets 1 - P + P/K, every other P/K; ``greedy``: P = 0), the same distribution VW's
  ``--epsilon`` gives, so decision records read it alike (offline evaluation computes it
  without the arms' costs, so by the best estimate: it does not know the offers
  configuration). Other kinds (SquareCB, softmax, bagging) keep VW's model
  (slotwise.proxy.bandit.engine).
- **The cheapest arm that is not shown to earn less.** Given what each arm would cost on this
  cart (slotwise.proxy.offer_chooser), the greedy arm is not simply the best estimate: among
  the arms whose estimate is not below the best one's by more than ``prefer_cheaper``
  standard errors of the difference, it is the one that costs least (``offers.prefer_cheaper``,
  default :data:`PREFER_CHEAPER`; 0 serves the best estimate whatever it costs). A merchant
  does not give away margin that the data cannot show pays: where free shipping or 10% off
  earn within noise of no offer, no offer is served, and a costlier arm takes over as soon as
  its gain is larger than the noise. While a cheaper arm is served instead of the best
  estimate, the best estimate gets ``LEADER_SHARE`` (a tenth) of the greedy share (with
  ``greedy`` too; with epsilon 5% and five arms, ten times what exploring gives it), so that
  the question is settled by data rather than by exploration's P/K alone. The standard
  errors come from the sums of squares the table keeps (an arm's estimate with its
  ``PRIOR_WEIGHT`` pseudo-examples counted as examples); sums written before the squares were
  kept (two numbers) count as exact.

The learner keeps the sums (:class:`MeansTable`); a published model version carries them in
its metadata (``arm_means``, slotwise.proxy.bandit.store), and the proxies serve from an
immutable :class:`ArmMeans` built from them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from slotwise.proxy.bandit.features import USER, FeatureMap
from slotwise.types import Explore, Signals

MEANS_KINDS = frozenset({"epsilon", "greedy"})
PRIOR_WEIGHT = 20.0
PREFER_CHEAPER = 1.0  # standard errors within which the cheaper arm is served (offers.*)
LEADER_SHARE = 0.1  # of the greedy share, for the best mean while a cheaper arm is served
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
        if namespace(name) in _NO_CELL:
            continue
        kind = value.__class__
        if kind is str:
            text = value
        elif kind is bool:
            text = "true" if value else "false"
        elif kind is tuple:
            text = ",".join(sorted([str(item) for item in value]))  # type: ignore[union-attr]
        else:
            continue  # numbers make no cell
        parts.append(f"{name}={text}")
    parts.sort()
    return "|".join(parts)


@dataclass(frozen=True, slots=True)
class MeansData:
    """The sums as a model version's metadata stores them: cell -> arm -> (count, sum, sum of
    squares); a version published before the squares were kept has (count, sum)."""

    cells: dict[str, dict[str, tuple[float, ...]]] = field(default_factory=dict)

    def problem(self) -> str | None:
        """What makes a decoded table unusable, or None."""
        if len(self.cells) > MAX_CELLS + 1:
            return f"arm_means holds {len(self.cells)} cells, more than {MAX_CELLS + 1}"
        for cell, arms in self.cells.items():
            for arm, sums in arms.items():
                if (
                    len(sums) not in (2, 3)
                    or not all(math.isfinite(value) for value in sums)
                    or sums[0] < 0
                    or (len(sums) == 3 and sums[2] < 0)
                ):
                    return (
                        f"arm_means[{cell!r}][{arm!r}]: {list(sums)} is not a count, a sum "
                        "and a sum of squares"
                    )
        return None


class MeansTable:
    """The learner's running sums for one offer set (one writer: the learner)."""

    def __init__(self, data: MeansData | None = None) -> None:
        self._cells: dict[str, dict[str, list[float]]] = {
            cell: {arm: _three(sums) for arm, sums in arms.items()}
            for cell, arms in (data.cells.items() if data is not None else ())
        }

    def add(self, cell: str, arm: str, reward: float) -> None:
        """One joined decision: ``arm`` served in ``cell`` earned ``reward``."""
        cells = self._cells
        targets = [OVERALL]
        if cell in cells or len(cells) <= MAX_CELLS:
            targets.append(cell)
        for name in targets:
            sums = cells.setdefault(name, {}).setdefault(arm, [0.0, 0.0, 0.0])
            sums[0] += 1.0
            sums[1] += reward
            sums[2] += reward * reward

    def data(self) -> MeansData:
        return MeansData(
            {
                cell: {arm: (sums[0], sums[1], sums[2]) for arm, sums in arms.items()}
                for cell, arms in self._cells.items()
            }
        )


def _three(sums: tuple[float, ...]) -> list[float]:
    """(count, sum, squares); two numbers (written before the squares were kept): the squares
    as if every reward had been the mean, the least spread the sum allows."""
    count, total = sums[0], sums[1]
    if len(sums) >= 3:
        return [count, total, sums[2]]
    return [count, total, total * total / count if count > 0 else 0.0]


_EMPTY = (0.0, 0.0, 0.0)


def _estimates(
    cell: Mapping[str, tuple[float, ...]], overall: Mapping[str, tuple[float, ...]]
) -> dict[str, tuple[float, float]]:
    """Per arm: the cell's mean backed off towards the arm's overall mean, and its standard
    error (the prior's ``PRIOR_WEIGHT`` pseudo-examples counted as examples at the overall
    mean and spread)."""
    estimates: dict[str, tuple[float, float]] = {}
    for arm, sums_all in overall.items():
        count_all, total_all, squares_all = _three(sums_all)
        prior = total_all / count_all if count_all > 0 else 0.0
        prior_squares = squares_all / count_all if count_all > 0 else 0.0
        count, total, squares = _three(cell.get(arm, _EMPTY))
        weight = count + PRIOR_WEIGHT
        mean = (total + PRIOR_WEIGHT * prior) / weight
        second = (squares + PRIOR_WEIGHT * prior_squares) / weight
        estimates[arm] = (mean, math.sqrt(max(second - mean * mean, 0.0) / weight))
    return estimates


@dataclass(frozen=True, slots=True)
class ArmMeans:
    """What a proxy serves from: per cell, the estimate of every arm and its standard error
    (immutable)."""

    estimates: Mapping[str, Mapping[str, float]]
    overall: Mapping[str, float]
    # the squares of the standard errors (what the rule compares), per cell and overall
    variances: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    overall_variances: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def build(cls, data: MeansData) -> ArmMeans:
        overall_sums = data.cells.get(OVERALL, {})
        overall = _estimates(overall_sums, overall_sums)
        cells = {
            cell: _estimates(arms, overall_sums)
            for cell, arms in data.cells.items()
            if cell != OVERALL
        }
        return cls(
            MappingProxyType({cell: _means(arms) for cell, arms in cells.items()}),
            _means(overall),
            MappingProxyType({cell: _variances(arms) for cell, arms in cells.items()}),
            _variances(overall),
        )

    def values(self, cell: str) -> Mapping[str, float]:
        """Each arm's estimate in this cell (an unseen cell: the overall means)."""
        return self.estimates.get(cell, self.overall)

    def standard_errors(self, cell: str) -> dict[str, float]:
        """Each arm's standard error in this cell (an unseen cell: the overall means')."""
        variances = self.variances.get(cell, self.overall_variances)
        return {arm: math.sqrt(variance) for arm, variance in variances.items()}

    def distribution(
        self,
        cell: str,
        names: Sequence[str],
        epsilon: float,
        costs: Callable[[], Sequence[float]] | None = None,
        prefer_cheaper: float = 0.0,
    ) -> list[float]:
        """Epsilon-greedy over ``names``: the greedy arm gets 1 - epsilon + epsilon/K, every
        other epsilon/K.

        The greedy arm: without ``costs`` (or with ``prefer_cheaper`` 0), the best estimate
        (arms that tie share the 1 - epsilon). With ``costs`` (what each arm would cost here,
        in the order of ``names``; called only when more than one arm is within the noise),
        the cheapest of the arms whose estimate is not below the best one's by more than
        ``prefer_cheaper`` standard errors of the difference (of equal costs, the better
        estimate); while that is not the best estimate, the best gets ``LEADER_SHARE`` of the
        1 - epsilon. An offer set that has learned nothing (no arm has data)
        serves every arm alike, as an untrained VW model does, rather than its first or its
        cheapest arm nearly always."""
        values = self.values(cell)
        estimates = [values.get(name, 0.0) for name in names]
        highest = max(estimates, default=0.0)
        best = [position for position, value in enumerate(estimates) if value == highest]
        if costs is not None and prefer_cheaper > 0.0 and len(best) < len(names):
            # within the noise: (best - estimate)^2 <= z^2 (se^2 + se_best^2), no square roots
            variances = self.variances.get(cell, self.overall_variances)
            leader = best[0]
            top = variances.get(names[leader], 0.0)
            z2 = prefer_cheaper * prefer_cheaper
            plausible = [
                position
                for position, value in enumerate(estimates)
                if (highest - value) ** 2 <= z2 * (variances.get(names[position], 0.0) + top)
            ]
            if len(plausible) > 1:
                cost = costs()
                best = [min(plausible, key=lambda at: (cost[at], -estimates[at]))]
                if best[0] != leader:
                    pmf = [epsilon / len(names)] * len(names)
                    pmf[best[0]] += (1.0 - epsilon) * (1.0 - LEADER_SHARE)
                    pmf[leader] += (1.0 - epsilon) * LEADER_SHARE
                    return pmf
        share = epsilon / len(names)
        pmf = [share] * len(names)
        for position in best:
            pmf[position] += (1.0 - epsilon) / len(best)
        return pmf


def _means(arms: Mapping[str, tuple[float, float]]) -> Mapping[str, float]:
    return MappingProxyType({arm: mean for arm, (mean, _) in arms.items()})


def _variances(arms: Mapping[str, tuple[float, float]]) -> Mapping[str, float]:
    return MappingProxyType({arm: error * error for arm, (_, error) in arms.items()})


__all__ = [
    "LEADER_SHARE",
    "MAX_CELLS",
    "PREFER_CHEAPER",
    "PRIOR_WEIGHT",
    "ArmMeans",
    "MeansData",
    "MeansTable",
    "cell_of",
    "uses_means",
]
