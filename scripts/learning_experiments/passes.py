"""The engine's estimator on uniformly logged data, over one or more passes.

Draws `impressions` uniformly random decisions from the default scenario (its truth, users,
holdout and consent share), trains a workspace exactly as the learner does (shared example,
chosen action labelled, the others prepared), and after each requested number of passes
prints the model's greedy share of the oracle over all users. The draws are those of
`scripts/oracle_bound.py --learner uniform --impressions N --seeds S`, whose greedy share is
what exact per-(segment, slot, variant) means of the same data pick. Experiment hooks apply
(SW_LEARN, SW_INTER; SW_OCTAVE=1 keeps only the octave feature of numbers):

    cd /tmp && SW_INTER=udv SW_LEARN="--learning_rate 0.03 --clip_p 0.3 --power_t 0.2" \\
        $REPO/.venv/bin/python $REPO/scripts/learning_experiments/passes.py 6 20000 1,3,10
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
from pathlib import Path
from typing import Any

import pylibvw

from slotwise.lab.scenario import Segment, load_scenario
from slotwise.proxy.bandit import workspace as W
from slotwise.proxy.bandit.features import VARIANT, FeatureMap
from slotwise.types import Explore

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("hooks", HERE / "sitecustomize.py")
assert _spec is not None and _spec.loader is not None
_spec.loader.exec_module(importlib.util.module_from_spec(_spec))
if os.environ.get("SW_OCTAVE"):
    import slotwise.proxy.bandit.features as features

    _value_features = features._value_features

    def _octave_only(name: str, value: Any) -> list[str]:
        out = _value_features(name, value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return [x for x in out if "~~" in x]
        return out

    features._value_features = _octave_only

SCENARIO = HERE.parent.parent / "examples/scenarios/segment-winners.toml"
_CB_LABEL = 4


def _passes(text: str) -> list[int]:
    try:
        counts = sorted(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"passes are whole numbers, as 1,3,10: {text!r}") from None
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError(f"passes are 1 or more, as 1,3,10: {text!r}")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("seed", type=int)
    parser.add_argument("impressions", type=int)
    parser.add_argument("passes", type=_passes, help="after how many passes to report, as 1,3,10")
    args = parser.parse_args()
    seed, impressions, passes = args.seed, args.impressions, args.passes
    scenario = load_scenario(SCENARIO)
    campaign = scenario.campaign
    rng = random.Random(seed)
    fm = FeatureMap()
    users: list[tuple[Segment, dict[str, Any], bool, bool]] = []
    for number in range(scenario.users):
        _, segment, signals = scenario.draw_user(rng, number)
        consented = signals["consent.level"] == "personal"
        users.append((segment, signals, consented, rng.random() < campaign.holdout))
    data = []
    for _ in range(impressions):
        segment, signals, consented, holdout = users[rng.randrange(len(users))]
        if holdout:
            continue
        chosen = {s.name: rng.randrange(len(s.variants)) for s in campaign.slots}
        names = {s.name: s.variants[chosen[s.name]].name for s in campaign.slots}
        clicked = rng.random() < segment.ctr(names, scenario.upstream)
        data.append((segment, signals, consented, chosen, clicked))
    ws = W.new_workspace(Explore("greedy", 0.0))
    actions = W.PreparedActions.build(ws, campaign)
    done = 0
    for target in passes:
        for _ in range(target - done):
            for _, signals, consented, chosen, clicked in data:
                shared = W.shared_example(ws, fm.shared(signals, personal=consented))
                for position, slot in enumerate(campaign.slots):
                    labelled = pylibvw.example(ws, _CB_LABEL)
                    at = chosen[slot.name]
                    labelled.push_feature_dict(ws, {VARIANT: W.variant_features(slot, at)})
                    # drawn uniformly over the slot's variants: the logged probability is 1/k
                    probability = 1 / len(slot.variants)
                    cost = -1.0 if clicked else 0.0
                    labelled.set_label_string(ws, f"0:{cost}:{probability!r}", _CB_LABEL)
                    ws.setup_example(labelled)
                    prepared = actions.per_slot[position]
                    row = [labelled if j == at else prepared[j] for j in range(len(prepared))]
                    pylibvw.vw.learn_multi(ws, [shared, *row])
        done = target
        got = best = 0.0
        for segment, signals, consented, _ in users:
            shared = W.shared_example(ws, fm.shared(signals, personal=consented))
            pick = {}
            for position, slot in enumerate(campaign.slots):
                pylibvw.vw.predict_multi(ws, [shared, *actions.per_slot[position]])
                pmf = shared.get_action_scores()
                pick[slot.name] = slot.variants[max(range(len(pmf)), key=pmf.__getitem__)].name
            got += segment.ctr(pick, scenario.upstream)
            best += segment.oracle_ctr()
        print(f"seed {seed}, {done} passes: greedy {100 * got / best:.1f}%", flush=True)


if __name__ == "__main__":
    main()
