from __future__ import annotations

import random
from pathlib import Path

import pytest

from slotwise.proxy.bandit import BanditRuntime, FeatureMap, ModelStore
from slotwise.proxy.decision_log import OutcomeRecord, decision_record
from slotwise.proxy.learn.learner import Learner
from slotwise.proxy.learn.log import JoinedRecord
from slotwise.types import Explore
from tests.proxy.bandit.campaigns import Rules, make_campaign


def _signals(segment: str) -> dict[str, str | int | bool]:
    return {"consent.level": "personal", "user.is_new": False, "device.type": segment}


def test_the_loop_learns_a_segment_specific_winner_and_publishes_it(tmp_path: Path) -> None:
    """mobile users click s0v3, desktop users click s0v7: the published model knows."""
    campaign = make_campaign(slots=1, variants=10)
    store = ModelStore(tmp_path)
    runtime = BanditRuntime(store, rng=random.Random(1))
    runtime.install([campaign])
    learner = Learner([campaign], store)
    rng = random.Random(2)
    winners = {"mobile": "s0v3", "desktop": "s0v7"}
    for n in range(3000):
        segment = rng.choice(["mobile", "desktop"])
        decision = runtime.choose("spring", {}, _signals(segment), f"u{n}")
        assert decision is not None
        record = decision_record(decision, f"d{n}", float(n), "p1")
        clicked = decision.variant("s0") == winners[segment] and rng.random() < 0.5
        learner.learn(JoinedRecord(record, OutcomeRecord(clicks=clicked), float(clicked), True))
        if n % 500 == 499:
            assert learner.publish()
            runtime.reload()
    assert runtime.snapshot.versions() == {"spring": "v6"}
    assert learner.stats.examples == 3000
    for segment, winner in winners.items():
        picks = [runtime.choose("spring", {}, _signals(segment), "x") for _ in range(200)]
        share = sum(d is not None and d.variant("s0") == winner for d in picks) / len(picks)
        assert share > 0.8, (segment, share)


def test_holdout_and_unknown_campaigns_teach_nothing(tmp_path: Path) -> None:
    campaign = make_campaign(holdout=1.0)
    runtime = BanditRuntime(rng=random.Random(1))
    runtime.install([campaign])
    decision = runtime.choose("spring", {}, _signals("mobile"), "u")
    assert decision is not None and decision.holdout
    learner = Learner([campaign], ModelStore(tmp_path), FeatureMap())
    record = decision_record(decision, "d", 0.0, "p")
    assert not learner.learn(JoinedRecord(record, OutcomeRecord(), 0.0, False))
    # control responses are tracked: a control decision joined to a click still teaches
    # nothing (no variant was chosen), it only counts for lift
    clicked = JoinedRecord(record, OutcomeRecord(clicks=1.0), 1.0, True)
    assert not learner.learn(clicked)
    assert learner.stats.skipped_holdout == 2
    other = decision_record(decision, "d", 0.0, "p").__class__(id="e", ts=0.0, campaign="other")
    assert not learner.learn(JoinedRecord(other, OutcomeRecord(), 0.0, False))
    assert learner.publish() == []


def test_a_restarted_learner_continues_from_the_current_model(tmp_path: Path) -> None:
    campaign = make_campaign(slots=1, variants=3)
    store = ModelStore(tmp_path)
    runtime = BanditRuntime(rng=random.Random(1))
    runtime.install([campaign])
    learner = Learner([campaign], store)
    decision = runtime.choose("spring", {}, _signals("mobile"), "u")
    assert decision is not None
    learner.learn(JoinedRecord(decision_record(decision, "d", 0, "p"), OutcomeRecord(), 1.0, True))
    (info,) = learner.publish()
    again = Learner([campaign], store)
    again.learn(JoinedRecord(decision_record(decision, "e", 1, "p"), OutcomeRecord(), 1.0, True))
    (second,) = again.publish()
    assert (second.version, second.parent, second.examples) == (2, 1, 2)
    store.rollback("spring")
    again.learn(JoinedRecord(decision_record(decision, "f", 2, "p"), OutcomeRecord(), 1.0, True))
    assert again.publish() == []
    assert "rollback" in again.warnings[-1]
    assert info.version == 1


@pytest.mark.parametrize("explore", [Explore("epsilon", 0.1), Explore("squarecb", 10.0)])
def test_the_learner_learns_the_model_that_full_action_lists_would(explore: Explore) -> None:
    """Empty stand-ins for the candidates not chosen change nothing VW learns: the same
    decisions learned with every candidate's features give the same predictions, bit for bit."""
    import pylibvw

    from slotwise.proxy.bandit.workspace import (
        PreparedActions,
        action_features,
        new_workspace,
        predict_pmf,
        shared_example,
    )

    campaign = make_campaign(slots=2, variants=6)
    campaign = campaign.__class__(campaign.name, campaign.slots, explore)
    runtime = BanditRuntime(rng=random.Random(1))
    runtime.install([campaign])
    learner = Learner([campaign])
    reference = new_workspace(campaign.explore)
    prepared = PreparedActions.build(reference, campaign).per_slot
    features = FeatureMap()
    rng = random.Random(3)
    decisions = []
    for n in range(300):
        signals = {**_signals(rng.choice(["mobile", "desktop"])), "user.age": rng.randint(18, 60)}
        rules = {"s1": Rules(tuple(f"s1v{v}" for v in range(6) if v != n % 6))}
        decision = runtime.choose("spring", rules, signals, f"u{n}")
        assert decision is not None
        record = decision_record(decision, f"d{n}", float(n), "p")
        reward = float(rng.random() < 0.3)
        assert learner.learn(JoinedRecord(record, OutcomeRecord(clicks=reward), reward, True))
        decisions.append((signals, record))
        shared = shared_example(reference, features.shared(signals, personal=True))
        for position, logged in enumerate(record.slots):
            slot = campaign.slots[position]
            chosen = pylibvw.example(reference, 4)
            chosen.push_feature_dict(reference, action_features(slot, int(logged.variant[-1])))
            chosen.set_label_string(reference, f"0:{-reward!r}:{logged.probability!r}", 4)
            reference.setup_example(chosen)
            actions = [
                chosen if name == logged.variant else prepared[position][int(name[-1])]
                for name in logged.candidates
            ]
            pylibvw.vw.learn_multi(reference, [shared, *actions])
    ours_ws = learner.workspace("spring")
    trained = PreparedActions.build(ours_ws, campaign).per_slot
    for signals, _ in decisions[:20]:
        for position in range(2):
            ours = predict_pmf(
                ours_ws,
                shared_example(ours_ws, features.shared(signals, personal=True)),
                trained[position],
            )
            theirs = predict_pmf(
                reference,
                shared_example(reference, features.shared(signals, personal=True)),
                prepared[position],
            )
            assert ours == theirs
