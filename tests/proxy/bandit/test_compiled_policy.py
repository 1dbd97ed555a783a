"""The bandit on a real compiled policy (slotwise.dsl), through the proxy's chooser adapter."""

from __future__ import annotations

import random
from pathlib import Path

from slotwise.dsl.loader import load_policy_set
from slotwise.dsl.schema_file import builtin_schema
from slotwise.plugins.schema import Context
from slotwise.proxy.bandit import BanditRuntime, from_compiled
from slotwise.proxy.chooser import BanditChooser
from slotwise.types import Subject

POLICY = Path(__file__).resolve().parents[3] / "examples" / "scenarios" / "segment-winners.sw"


def test_compiled_campaigns_become_bandit_campaigns() -> None:
    policy = load_policy_set([POLICY], builtin_schema())
    campaign = from_compiled(policy.campaign("spring_sale"))
    assert campaign.combinations == 1000
    assert (campaign.explore.kind, campaign.explore.parameter) == ("squarecb", 10.0)
    assert campaign.holdout == 0.1
    assert dict(campaign.goal.weights) == {"clicks": 1.0}
    assert campaign.slot("image").variants[1].attributes == {"tone": "warm"}


def test_rules_and_bandit_together_through_the_proxy_chooser() -> None:
    policy = load_policy_set([POLICY], builtin_schema())
    compiled = policy.campaign("spring_sale")
    runtime = BanditRuntime(rng=random.Random(4))
    runtime.install_policy_set(policy)
    chooser = BanditChooser(runtime)
    signals = {
        "consent.level": "personal",
        "time.daypart": "night",
        "geo.country": "DE",
        "device.type": "mobile",
    }
    eligibility = compiled.eligible(Context(signals, 0.0))
    seen = set()
    for n in range(300):
        choice = chooser.choose(compiled, eligibility, signals, Subject(f"user-{n}", "personal"))
        assert choice.model_version == "v0"
        if choice.holdout:
            continue
        image = next(c for c in choice.choices if c.slot == "image")
        assert image.variant != "image_9"  # excluded at night by the policy
        assert image.candidates == eligibility.slots["image"].choices
        cta = next(c for c in choice.choices if c.slot == "cta")
        seen.add((cta.variant, round(cta.probability, 4)))
    # the boost for German shoppers is in the logged probability: 1.2 / 10.2 vs 1 / 10.2
    assert ("cta_6", round(1.2 / 10.2, 4)) in seen
    assert ("cta_1", round(1 / 10.2, 4)) in seen
