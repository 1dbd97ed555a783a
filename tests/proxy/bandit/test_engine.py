from __future__ import annotations

import random

import pytest

from slotwise.proxy.bandit import BanditRuntime, FeatureMap
from slotwise.proxy.bandit.engine import CampaignModel, candidates_for
from slotwise.proxy.bandit.workspace import new_workspace
from tests.proxy.bandit.campaigns import Rules, make_campaign

PERSONAL = {"consent.level": "personal", "user.age": 21, "device.type": "mobile"}


def _model(holdout: float = 0.0) -> CampaignModel:
    campaign = make_campaign(holdout=holdout)
    return CampaignModel.build(campaign, new_workspace(campaign.explore), "v0")


def test_untrained_model_draws_uniformly_over_what_the_rules_leave() -> None:
    model = _model()
    rules = {
        "s0": Rules(("s0v1", "s0v2", "s0v3", "s0v4")),
        "s1": Rules(("s1v0", "s1v1"), preferred=("s1v1",)),
        "s2": Rules(("s2v0", "s2v5"), pinned="s2v5"),
    }
    rng = random.Random(3)
    seen: set[str] = set()
    for _ in range(200):
        decision = model.decide(rules, PERSONAL, "u1", FeatureMap(), rng)
        first, second, third = decision.choices
        assert first.candidates == ("s0v1", "s0v2", "s0v3", "s0v4")
        assert first.probability == pytest.approx(0.25, abs=1e-6)
        assert (second.variant, second.probability) == ("s1v1", 1.0)
        assert (third.variant, third.probability) == ("s2v5", 1.0)
        assert first.variant is not None
        seen.add(first.variant)
    assert seen == {"s0v1", "s0v2", "s0v3", "s0v4"}


def test_a_slot_with_nothing_eligible_keeps_its_upstream_content() -> None:
    decision = _model().decide({"s0": Rules(())}, PERSONAL, "u", FeatureMap(), random.Random(1))
    assert decision.choices[0].variant is None
    assert decision.variant("s1") is not None  # slots the rules do not mention: all variants


def test_boost_multiplies_the_probability_and_is_logged() -> None:
    model = _model()
    rules = {"s0": Rules(("s0v0", "s0v1"), boosts={"s0v1": 3.0})}
    rng = random.Random(5)
    probabilities = {}
    for _ in range(100):
        choice = model.decide(rules, PERSONAL, "u", FeatureMap(), rng).choices[0]
        probabilities[choice.variant] = choice.probability
    assert probabilities == {"s0v0": pytest.approx(0.25), "s0v1": pytest.approx(0.75)}


def test_holdout_users_get_no_choices_and_the_decision_says_so() -> None:
    model = _model(holdout=1.0)
    rules = {"s0": Rules(("s0v1", "s0v2"))}
    decision = model.decide(rules, PERSONAL, "u", FeatureMap(), random.Random(1))
    assert decision.holdout
    assert [c.variant for c in decision.choices] == [None, None, None]
    assert decision.choices[0].candidates == ("s0v1", "s0v2")  # logged for evaluation
    assert decision.propensity == 1.0


def test_no_consent_decisions_log_no_personal_signal() -> None:
    signals = {"consent.level": "contextual", "user.age": 21, "device.type": "mobile"}
    decision = _model().decide({}, signals, "u", FeatureMap(), random.Random(1))
    assert not decision.personal
    assert decision.signals == {"device.type": "mobile"}


def test_candidates_pin_beats_prefer_beats_allowed() -> None:
    slot = make_campaign().slots[0]
    assert candidates_for(slot, None) == tuple(v.name for v in slot.variants)
    assert candidates_for(slot, Rules(("a", "b"), preferred=("b",), pinned="c")) == ("c",)
    assert candidates_for(slot, Rules(("a", "b"), preferred=("b",))) == ("b",)


def test_runtime_serves_installed_campaigns_only() -> None:
    runtime = BanditRuntime(rng=random.Random(1))
    runtime.install([make_campaign("a"), make_campaign("b")])
    assert runtime.snapshot.versions() == {"a": "v0", "b": "v0"}
    assert runtime.choose("zzz", {}, PERSONAL, "u") is None
    decision = runtime.choose("a", {}, PERSONAL, "u")
    assert decision is not None and len(decision.choices) == 3
    before = runtime.snapshot
    runtime.install([make_campaign("a")])
    assert runtime.snapshot is not before
    assert runtime.snapshot.models["a"] is before.models["a"]  # unchanged campaign: kept


def test_remembered_distributions_are_what_vw_predicts() -> None:
    """A serving model never learns, so the distribution it remembers for a context is VW's
    prediction for it; a trained model checked against fresh predictions, boosts applied anew."""
    import pylibvw

    from slotwise.proxy.bandit.workspace import PreparedActions, predict_pmf, shared_example

    campaign = make_campaign(slots=2, variants=5)
    workspace = new_workspace(campaign.explore)
    features = FeatureMap()
    prepared = PreparedActions.build(workspace, campaign).per_slot
    contexts = [{**PERSONAL, "user.age": age, "device.type": d} for age in (19, 40) for d in "ab"]
    for n in range(400):  # train the workspace: distributions that differ by context
        signals = contexts[n % 4]
        shared = shared_example(workspace, features.shared(signals, personal=True))
        for slot in range(2):
            chosen = pylibvw.example(workspace, 4)
            chosen.push_feature_dict(workspace, {"variant": [f"s{slot}=s{slot}v{n % 5}"]})
            cost = -1.0 if (n % 5) == (n % 4) else 0.0
            chosen.set_label_string(workspace, f"0:{cost}:0.2", 4)
            workspace.setup_example(chosen)
            actions = [chosen if v == n % 5 else prepared[slot][v] for v in range(5)]
            pylibvw.vw.learn_multi(workspace, [shared, *actions])
    model = CampaignModel.build(campaign, workspace, "v1")
    rules = {"s1": Rules(("s1v0", "s1v2", "s1v4"), boosts={"s1v2": 3.0})}
    for _ in range(3):  # the first pass predicts, the next ones remember
        for signals in contexts:
            greedy = model.greedy(rules, signals, features)
            shared = shared_example(workspace, features.shared(signals, personal=True))
            slot0 = predict_pmf(workspace, shared, list(model.actions.per_slot[0]))
            slot1 = predict_pmf(
                workspace, shared, [model.actions.per_slot[1][v] for v in (0, 2, 4)]
            )
            boosted = [p * (3.0 if v == 2 else 1.0) for p, v in zip(slot1, (0, 2, 4), strict=True)]
            assert (
                model.distribution(signals, 0, [f"s0v{v}" for v in range(5)], True, features)
                == slot0
            )
            assert greedy["s0"] == f"s0v{max(range(5), key=slot0.__getitem__)}"
            assert greedy["s1"] == ("s1v0", "s1v2", "s1v4")[max(range(3), key=boosted.__getitem__)]
    assert (
        len({tuple(model.distribution(c, 0, ["s0v0", "s0v1"], True, features)) for c in contexts})
        > 1
    )


def test_the_memory_of_distributions_is_bounded_by_its_setting() -> None:
    """``remember`` contexts at most (cleared when full, then filled again); 0: none, every
    request predicts."""
    campaign = make_campaign()
    contexts = [{**PERSONAL, "user.age": age} for age in range(20, 30)]
    for remember, most in ((0, 0), (3, 3), (100, 10)):
        model = CampaignModel.build(
            campaign, new_workspace(campaign.explore), "v0", remember=remember
        )
        sizes = []
        for signals in contexts:
            model.decide({}, signals, "u1", FeatureMap(), random.Random(1))
            sizes.append(len(model._remembered))
        assert max(sizes) == most
    runtime = BanditRuntime(remember=5)
    runtime.install([campaign])
    assert runtime.snapshot.models[campaign.name].remember == 5
