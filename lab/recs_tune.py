"""Choose hybrid's weights on a tuning period, never on the test period.

A three-way time split of an events file (the shares are of the events' times):

- learn: before ``tune_from`` (50%): learned from, never scored;
- tune: from ``tune_from`` to ``test_from`` (50% to 70%): learned from; every blend of the
  grid ranks each view there (:func:`slotwise.lab.recs_replay.replay_events`, one pass,
  the production code with that blend) and the best HR@K, then NDCG@K, then the grid's
  order (production's weights first) wins;
- test: from ``test_from`` (70%, the replay's default) to the end: only the chosen blend is
  scored there, beside every single strategy and most-popular (``slotwise recs replay`` with
  that ``hybrid(...)``); nothing here reads it.

``scripts/tune_hybrid.py`` runs it and prints the test command.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from slotwise.lab.recs_replay import ReplayResult, Share, Strategy, StrategyResult, replay_events
from slotwise.proxy.catalogue import CatalogueSnapshot
from slotwise.proxy.events.schema import Event
from slotwise.proxy.recommend.strategies import HYBRID, Blend

TUNE_FROM = Share(0.5)
TEST_FROM = Share(0.7)
# co_view stays 1: only the ratios between the weights order the items
GRID: Mapping[str, Sequence[float]] = {
    "co_buy": (0.0, 0.5, 1.0, 2.0),
    "similar": (0.0, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0),
    "popular": (0.0, 0.05, 0.15, 0.3, 0.5),
    "scan": (25, 40, 60, 100),
}


def blend_name(blend: Blend) -> str:
    """``hybrid(co_view=1, co_buy=1, similar=0.35, popular=0.15, scan=40)``: what
    ``slotwise recs replay --strategies`` reads back."""
    parts = [f"{f.name}={getattr(blend, f.name):g}" for f in dataclasses.fields(blend)]
    return f"hybrid({', '.join(parts)})"


def grid_blends(grid: Mapping[str, Sequence[float]] = GRID) -> list[Blend]:
    """Production's blend first, then every combination (the scan only where similarity
    weighs something)."""
    blends = [HYBRID]
    for co_buy, similar, popular, scan in itertools.product(
        grid["co_buy"], grid["similar"], grid["popular"], grid["scan"]
    ):
        if similar == 0.0 and scan != grid["scan"][0]:
            continue  # the scan changes nothing without similarity
        blend = Blend(1.0, co_buy, similar, popular, int(scan))
        if blend not in blends:
            blends.append(blend)
    return blends


@dataclass(frozen=True, slots=True)
class Tuned:
    chosen: Blend
    ranking: tuple[tuple[Blend, StrategyResult], ...]  # best first, on the tune period
    replay: ReplayResult  # the tune period's replay (all blends)


def _order(item: tuple[int, Blend, StrategyResult]) -> tuple[float, float, int]:
    index, _, result = item
    return (-result.hr.value, -result.ndcg.value, index)


def tune(
    events: Sequence[Event],
    catalogue: CatalogueSnapshot,
    blends: Sequence[Blend],
    *,
    k: int = 10,
    tune_from: float | Share = TUNE_FROM,
    test_from: float | Share = TEST_FROM,
    session_gap: float = 1800.0,
) -> Tuned:
    """Score every blend on the tune period only; the best HR@K (then NDCG@K) is chosen."""
    strategies = [Strategy(blend_name(b), "hybrid", "", b) for b in blends]
    result = replay_events(
        events, catalogue, strategies, k=k, score_from=tune_from, score_until=test_from,
        session_gap=session_gap,
    )  # fmt: skip
    by_name = {r.strategy: r for r in result.results}
    scored = sorted(((i, b, by_name[blend_name(b)]) for i, b in enumerate(blends)), key=_order)
    return Tuned(scored[0][1], tuple((b, r) for _, b, r in scored), result)


def rows(tuned: Tuned, top: int) -> Iterator[str]:
    for blend, r in tuned.ranking[:top]:
        yield (
            f"{blend_name(blend):<66} {r.hr.value:.4f} [{r.hr.low:.4f}, {r.hr.high:.4f}]"
            f" {r.ndcg.value:.4f}"
        )
