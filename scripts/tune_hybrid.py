"""Choose hybrid's weights on the tune period of a three-way time split (slotwise.lab.recs_tune).

    python3 scripts/diginetica_events.py ../shared/data/retail var/diginetica
    python3 scripts/tune_hybrid.py var/diginetica/events.jsonl var/diginetica/catalogue.jsonl

Learn from every event; score each blend of the grid (``GRID`` in lab/recs_tune.py, production's
weights first) on the product views between 50% and 70% of the events' times (the tune
period); print the best ones and the chosen blend, and the command that scores it, once, on the
test period (70% to the end) beside every single strategy and most-popular. Nothing of the
test period is scored here.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from slotwise.lab.recs_replay import catalogue_of, read_events
from slotwise.lab.recs_tune import TEST_FROM, TUNE_FROM, blend_name, grid_blends, rows, tune


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(f"usage: {argv[0]} EVENTS.jsonl CATALOGUE.jsonl", file=sys.stderr)
        return 2
    events = list(read_events(Path(argv[1])))
    catalogue = catalogue_of(Path(argv[2]), ())
    blends = grid_blends()
    started = time.perf_counter()
    tuned = tune(events, catalogue, blends)
    seconds = time.perf_counter() - started
    result = tuned.replay
    print(
        f"{len(blends)} blends, {result.scored} views of the tune period scored "
        f"({TUNE_FROM.fraction:.0%} to {TEST_FROM.fraction:.0%} of the events); {seconds:.0f} s"
    )
    print(f"\n{'blend (best 15 on the tune period)':<66} {'HR@10':>22} NDCG@10")
    for row in rows(tuned, 15):
        print(row)
    now = next(r for b, r in tuned.ranking if b == blends[0])
    print(f"\nproduction's blend: HR@10 {now.hr.value:.4f}, NDCG@10 {now.ndcg.value:.4f}")
    print(f"chosen: {blend_name(tuned.chosen)}\n\ntest it (once):")
    strategies = (
        "most_popular,trending(7d),last_visit(20),also_viewed,also_bought,similar,"
        f"{blend_name(tuned.chosen)}"
    )
    print(
        f"  slotwise recs replay {argv[1]} --catalogue {argv[2]} "
        f"--score-from {TEST_FROM.fraction:.0%} --strategies '{strategies}'"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
