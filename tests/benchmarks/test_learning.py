"""The learning loop's figures: engine time per decision, learning rate, the simulator runs.

Run with ``make bench`` or ``.venv/bin/pytest -m benchmark tests/benchmarks/test_learning.py -s``.
Baselines in the same run: the same per-slot decision parsed from VW text (what prepared
examples save), and one ``--ccb_explore_adf`` call for the three slots (the alternative
design). Figures go to docs/benchmarks.md ("Learning").
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pylibvw
import pytest
from vowpalwabbit import Workspace

from slotwise.dsl.loader import load_policy_set
from slotwise.dsl.schema_file import builtin_schema
from slotwise.lab.scenario import load_scenario
from slotwise.lab.sim_report import checks, summary
from slotwise.lab.simulate import simulate
from slotwise.plugins.schema import Context
from slotwise.proxy.bandit import BanditRuntime, FeatureMap, from_compiled
from slotwise.proxy.bandit.workspace import (
    PreparedActions,
    interaction_args,
    new_workspace,
    predict_pmf,
    shared_example,
    variant_features,
)
from slotwise.proxy.decision_log import OutcomeRecord, decision_record
from slotwise.proxy.learn.learner import Learner
from slotwise.proxy.learn.log import JoinedRecord

pytestmark = pytest.mark.benchmark

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "examples" / "scenarios"
ROUNDS, PER_ROUND = 7, 2000
SIGNALS = {
    "consent.level": "personal",
    "user.is_new": False,
    "user.age": 21,
    "user.segments": ("sports", "deals"),
    "device.type": "mobile",
    "device.os": "ios",
    "geo.country": "DE",
    "geo.region": "BE",
    "time.hour": 21,
    "time.daypart": "night",
    "request.path": "/spring",
    "ad.placement": "top",
}


def _campaign():  # type: ignore[no-untyped-def]
    policy = load_policy_set([SCENARIOS / "segment-winners.sw"], builtin_schema())
    return policy, policy.campaign("spring_sale")


def _timed(run: Callable[[], object], clock: Callable[[], int]) -> list[float]:
    samples = []
    for _ in range(PER_ROUND):
        started = clock()
        run()
        samples.append((clock() - started) / 1000)
    return samples


def _report(name: str, samples: list[list[float]]) -> tuple[float, float]:
    medians = [statistics.median(s) for s in samples]
    p99s = [sorted(s)[int(0.99 * len(s)) - 1] for s in samples]
    median, p99 = statistics.median(medians), statistics.median(p99s)
    print(f"{name:<52} median {median:7.1f} us   p99 {p99:7.1f} us")
    return median, p99


def test_engine_time_per_decision_for_1000_combinations() -> None:
    policy, compiled = _campaign()
    runtime = BanditRuntime(rng=random.Random(1))
    runtime.install_policy_set(policy)
    rules = compiled.eligible(Context(SIGNALS, 0.0)).slots
    # the holdout layer would skip the bandit for 10% of users: time only bandit decisions
    users = [f"u{i}" for i in range(50_000)]
    users = [u for u in users if not runtime.choose("spring_sale", rules, SIGNALS, u).holdout]
    # each timed decision in a context not seen before: a loaded model remembers VW's
    # distribution per context, and a repeated context would time that memory, not VW
    ages = iter(range(10**9))

    def decide() -> None:
        signals = dict(SIGNALS, **{"user.age": 10**6 + next(ages)})
        runtime.choose("spring_sale", rules, signals, random.choice(users))

    campaign = from_compiled(compiled)
    text_ws = new_workspace(campaign.explore)
    features = FeatureMap().shared(SIGNALS, personal=True)
    shared_text = "shared " + " ".join(
        f"|{ns} " + " ".join(f.replace(":", ";").replace("|", "/") for f in fs)
        for ns, fs in features.items()
    )
    slot_texts = [
        [f"|variant {' '.join(variant_features(slot, i))}" for i in range(len(slot.variants))]
        for slot in campaign.slots
    ]

    def decide_from_text() -> None:
        for lines in slot_texts:
            text_ws.predict([shared_text, *lines])

    ccb = Workspace(
        arg_list=["--ccb_explore_adf", "--quiet", "--epsilon", "0.05", *interaction_args()]
    )
    ccb_label = pylibvw.vw.lConditionalContextualBandit

    def ccb_example(features: dict[str, list[str]], label: str) -> object:
        example = pylibvw.example(ccb, ccb_label)
        example.push_feature_dict(ccb, features)
        example.set_label_string(ccb, label, ccb_label)
        ccb.setup_example(example)
        return example

    ccb_actions = [
        [ccb_example({"variant": variant_features(slot, i)}, "ccb action") for i in range(10)]
        for slot in campaign.slots
    ]
    ccb_flat = [a for slot in ccb_actions for a in slot]
    slot_labels = [
        "ccb slot " + ",".join(str(10 * s + i) for i in range(10)) for s in range(len(ccb_actions))
    ]

    def decide_ccb() -> None:
        shared = ccb_example(features, "ccb shared")
        slots = [ccb_example({}, label) for label in slot_labels]
        examples = [shared, *ccb_flat, *slots]
        pylibvw.vw.predict_multi(ccb, examples)
        assert len(shared.get_decision_scores()) == 3

    engine_ws = new_workspace(campaign.explore)
    prepared = PreparedActions.build(engine_ws, campaign).per_slot

    def predict_only() -> None:
        shared = shared_example(engine_ws, features)
        for actions in prepared:
            predict_pmf(engine_ws, shared, actions)

    cases = [
        ("per-slot cb_explore_adf, prepared (the engine)", decide),
        ("per-slot cb_explore_adf, prepared, VW calls only", predict_only),
        ("per-slot cb_explore_adf, parsed from text", decide_from_text),
        ("one ccb_explore_adf call, prepared actions, VW only", decide_ccb),
    ]
    results = {}
    for clock_name, clock in (("wall", time.perf_counter_ns), ("cpu", time.thread_time_ns)):
        for name, run in cases:
            for _ in range(200):
                run()
            samples = [_timed(run, clock) for _ in range(ROUNDS)]
            results[(name, clock_name)] = _report(f"{name} [{clock_name}]", samples)
    engine_median, engine_p99 = results[(cases[0][0], "cpu")]
    vw_median, _ = results[(cases[1][0], "cpu")]
    text_median, _ = results[(cases[2][0], "cpu")]
    ccb_median, _ = results[(cases[3][0], "cpu")]
    print(f"ccb_explore_adf: {ccb_median / vw_median:.1f}x the per-slot VW calls")
    print(f"prepared examples: {text_median / engine_median:.1f}x faster than text parsing")
    assert engine_p99 <= 1000.0


def test_learning_rate_in_joined_examples_per_second(tmp_path: Path) -> None:
    policy, compiled = _campaign()
    campaign = from_compiled(compiled)
    runtime = BanditRuntime(rng=random.Random(1))
    runtime.install([campaign])
    rng = random.Random(2)
    joined = []
    for n in range(10_000):
        if len(joined) == 5000:
            break
        signals = dict(SIGNALS, **{"user.age": rng.randint(18, 60)})
        decision = runtime.choose(campaign.name, {}, signals, f"u{n}")
        assert decision is not None
        if decision.holdout:
            continue
        record = decision_record(decision, f"d{len(joined)}", 0.0, "p")
        clicked = rng.random() < 0.2
        joined.append(JoinedRecord(record, OutcomeRecord(clicks=clicked), float(clicked), True))
    rates = []
    for _ in range(5):
        learner = Learner([campaign])
        started = time.thread_time()
        for record in joined:
            learner.learn(record)
        rates.append(len(joined) / (time.thread_time() - started))
    rate = statistics.median(rates)
    print(f"learning: {rate:.0f} joined examples/s (median of 5 x 5000, CPU time, 3 slots each)")
    assert rate >= 5000


@pytest.mark.parametrize("name", ["segment-winners", "no-segment-effect"])
def test_simulated_scenarios(name: str) -> None:
    scenario = load_scenario(SCENARIOS / f"{name}.toml")
    started = time.perf_counter()
    result = simulate(scenario)
    data = summary(scenario, result)
    print(f"\n{name}: {time.perf_counter() - started:.0f} s")
    for window in data["windows"][4::5]:
        print(
            f"  {window['end']:>6}  share {window['oracle_share']:.3f}"
            f"  pers {window['personalised']['expected_ctr']:.4f}"
            f"  control {window['control']['expected_ctr']:.4f}"
        )
    print(f"  final {data['final']}")
    print(f"  reached {data['oracle_share_reached_at']}")
    print(f"  lift {data['ctr_lift']}")
    print(f"  engine {data['engine_us']}  learning {data['learning']}")
    for ok, text in checks(data, scenario.effect):
        print(f"  [{'ok' if ok else 'MISS'}] {text}")
    if not scenario.effect:
        assert all(ok for ok, _ in checks(data, scenario.effect))
    else:
        assert data["final"]["control_multiple"] >= 2.0
