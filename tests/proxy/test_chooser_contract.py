"""One contract for every chooser: the rule chooser and the bandit answer alike.

Each test runs against both choosers on one real compiled policy: ``RuleChooser``, and
``BanditChooser`` over a real ``BanditRuntime`` with a model store in tmp_path (no model
published yet, so it serves the campaign's fresh "v0" workspace, as a new campaign does).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

from slotwise.dsl.compiled import CompiledCampaign, Eligibility
from slotwise.dsl.loader import load_policy_set
from slotwise.dsl.schema_file import builtin_schema
from slotwise.plugins.gathered import Gathered
from slotwise.proxy.bandit import BanditRuntime, ModelStore, from_compiled
from slotwise.proxy.choice import Choice, SlotChoice
from slotwise.proxy.chooser import RULES_MODEL, BanditChooser, Chooser, RuleChooser
from slotwise.proxy.decision_log import DecisionRecord, decision_record
from slotwise.types import Context, Signals, Subject

POLICY = """policy "contract" version 1

campaign contract {
  slot headline at "$.headline" {
    variant h1 "One" [tone: "warm"]
    variant h2 "Two" [tone: "cool"]
    variant h3 "Three" [tone: "warm"]
  }
  slot image at "$.image" {
    variant beach "https://cdn.example/beach.jpg"
    variant city "https://cdn.example/city.jpg"
  }
  slot badge at "$.badge" {
    variant fresh "New"
    variant hot "Hot"
  }
  slot cta at "$.cta" {
    variant buy "Buy now"
    variant look "Have a look"
  }
  rule "the city for Germany" when geo.country == "DE" then pin image city
  rule "no badge in Germany" when geo.country == "DE" then exclude badge fresh, hot
  rule "buy is twice as likely in Germany" when geo.country == "DE" then boost cta buy by 2
  optimize clicks
  explore epsilon 10%
  holdout 20%
}
"""
SHARE = 0.2
GERMAN = {"consent.level": "personal", "user.is_new": False, "geo.country": "DE"}
FRENCH = {"consent.level": "personal", "user.is_new": False, "geo.country": "FR"}
CONTEXTUAL = {"consent.level": "contextual", "geo.country": "FR", "device.type": "mobile"}
SEED = 20261205


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> CompiledCampaign:
    path = tmp_path_factory.mktemp("policies") / "contract.sw"
    path.write_text(POLICY)
    return load_policy_set([path], builtin_schema()).campaign("contract")


ChooserFactory = Callable[[int], Chooser]


@pytest.fixture(params=["rules", "bandit"])
def make_chooser(
    request: pytest.FixtureRequest, campaign: CompiledCampaign, tmp_path: Path
) -> Iterator[ChooserFactory]:
    """A chooser of the parametrised kind with its random draws seeded."""

    def rules(seed: int) -> Chooser:
        return RuleChooser(random.Random(seed))

    def bandit(seed: int) -> Chooser:
        runtime = BanditRuntime(ModelStore(tmp_path / f"models-{seed}"), rng=random.Random(seed))
        runtime.install([from_compiled(campaign)])
        assert runtime.snapshot.versions() == {"contract": "v0"} and not runtime.errors
        return BanditChooser(runtime, fallback=RuleChooser(random.Random(seed)))

    yield rules if request.param == "rules" else bandit


def _eligible(campaign: CompiledCampaign, signals: Signals) -> Eligibility:
    return campaign.eligible(Context(signals, 0.0))


def _served(
    chooser: Chooser, campaign: CompiledCampaign, signals: Signals, count: int
) -> Iterator[Choice]:
    """``count`` choices that are not holdout, for users who all have personal consent."""
    eligibility = _eligible(campaign, signals)
    n = 0
    while count:
        n += 1
        choice = chooser.choose(campaign, eligibility, signals, Subject(f"u{n}", "personal"))
        if not choice.holdout:
            count -= 1
            yield choice


def _within_binomial(hits: int, trials: int, p: float) -> bool:
    """Inside five standard deviations of a binomial(trials, p): fails by chance < 1e-6."""
    return abs(hits - trials * p) <= 5 * math.sqrt(trials * p * (1 - p)) + 1


def test_both_return_the_one_choice_type_with_every_slot_in_policy_order(
    make_chooser: ChooserFactory, campaign: CompiledCampaign, request: pytest.FixtureRequest
) -> None:
    kind = request.node.callspec.params["make_chooser"]
    (choice,) = _served(make_chooser(SEED), campaign, FRENCH, 1)
    assert type(choice) is Choice
    assert all(type(pick) is SlotChoice for pick in choice.choices)
    assert [pick.slot for pick in choice.choices] == [slot.name for slot in campaign.slots]
    assert choice.campaign == "contract" and choice.holdout_share == SHARE
    assert choice.model_version == {"rules": RULES_MODEL, "bandit": "v0"}[kind]


def test_a_pinned_slot_is_always_its_pin_with_probability_one(
    make_chooser: ChooserFactory, campaign: CompiledCampaign
) -> None:
    for choice in _served(make_chooser(SEED), campaign, GERMAN, 200):
        image = choice.choices[1]
        assert (image.slot, image.variant, image.probability) == ("image", "city", 1.0)
        assert image.candidates == ("city",)


def test_every_served_variant_is_a_candidate_drawn_with_a_probability(
    make_chooser: ChooserFactory, campaign: CompiledCampaign
) -> None:
    for signals in (GERMAN, FRENCH):
        eligibility = _eligible(campaign, signals)
        for choice in _served(make_chooser(SEED), campaign, signals, 300):
            for pick in choice.choices:
                assert pick.candidates == eligibility.slots[pick.slot].choices
                if pick.variant is not None:
                    assert pick.variant in pick.candidates
                    assert 0.0 < pick.probability <= 1.0


def test_a_slot_without_candidates_keeps_its_upstream_content(
    make_chooser: ChooserFactory, campaign: CompiledCampaign
) -> None:
    for choice in _served(make_chooser(SEED), campaign, GERMAN, 100):
        assert choice.choices[2] == SlotChoice("badge", None, 1.0, ())


@pytest.mark.parametrize(("signals", "slot"), [(FRENCH, 0), (GERMAN, 3)], ids=["plain", "boost"])
def test_the_logged_probabilities_are_the_distribution_drawn_from(
    make_chooser: ChooserFactory, campaign: CompiledCampaign, signals: Signals, slot: int
) -> None:
    draws = 4000
    counts: dict[str, int] = {}
    logged: dict[str, float] = {}
    for choice in _served(make_chooser(SEED), campaign, signals, draws):
        pick = choice.choices[slot]
        assert pick.variant is not None
        counts[pick.variant] = counts.get(pick.variant, 0) + 1
        # the same context and no learning in between: one distribution, logged exactly
        assert logged.setdefault(pick.variant, pick.probability) == pytest.approx(pick.probability)
    assert set(logged) == set(pick.candidates)
    assert sum(logged.values()) == pytest.approx(1.0)
    for variant, probability in logged.items():
        assert _within_binomial(counts[variant], draws, probability), (variant, counts)
    if slot == 3:  # the rules' boost is in the logged probability, whoever draws
        assert logged["buy"] == pytest.approx(2 * logged["look"])


def test_holdout_is_sticky_per_campaign_and_user_with_the_policys_share(
    make_chooser: ChooserFactory, campaign: CompiledCampaign
) -> None:
    eligibility = _eligible(campaign, FRENCH)
    users = [Subject(f"user-{n}", "personal", True) for n in range(4000)]
    first, second = make_chooser(1), make_chooser(2)  # other seeds: the hash decides, not a draw
    held = {u.user_id for u in users if first.choose(campaign, eligibility, FRENCH, u).holdout}
    again = {u.user_id for u in users if second.choose(campaign, eligibility, FRENCH, u).holdout}
    assert held == again
    assert _within_binomial(len(held), len(users), SHARE)
    # the same rule for both choosers: the control group is the sticky hash's
    rules = RuleChooser(random.Random(3))
    assert held == {
        u.user_id for u in users if rules.choose(campaign, eligibility, FRENCH, u).holdout
    }


def test_without_personal_consent_the_user_id_is_never_used(
    make_chooser: ChooserFactory, campaign: CompiledCampaign
) -> None:
    # the subject carries an id but no consent (and the signals even claim consent): the
    # holdout draw must be per request, so one user lands on both sides at the policy's share
    chooser = make_chooser(SEED)
    subject = Subject("user-1", "contextual")
    for signals in (CONTEXTUAL, FRENCH):
        eligibility = _eligible(campaign, signals)
        draws = [chooser.choose(campaign, eligibility, signals, subject) for _ in range(3000)]
        assert _within_binomial(sum(c.holdout for c in draws), len(draws), SHARE)


def _holdout_choice(chooser: Chooser, campaign: CompiledCampaign, signals: Signals) -> Choice:
    eligibility = _eligible(campaign, signals)
    for n in range(1000):
        choice = chooser.choose(campaign, eligibility, signals, Subject(f"u{n}", "personal"))
        if choice.holdout:
            return choice
    raise AssertionError("no holdout in 1000 users of a 20% holdout")


def test_a_holdout_choice_chooses_nothing_and_keeps_the_choice_sets(
    make_chooser: ChooserFactory, campaign: CompiledCampaign
) -> None:
    choice = _holdout_choice(make_chooser(SEED), campaign, GERMAN)
    eligibility = _eligible(campaign, GERMAN)
    assert choice.holdout and choice.holdout_share == SHARE and choice.propensity == SHARE
    assert choice.choices == tuple(
        SlotChoice(slot.name, None, 1.0, eligibility.slots[slot.name].choices)
        for slot in campaign.slots
    )


def test_a_holdout_decision_is_logged_alike_by_both() -> None:
    # one record per chooser for the same request: they differ only where the chooser does
    # (model_version; signals: the bandit logs the ones it can use as features)
    schema = builtin_schema()
    path = Path(__file__).resolve().parents[2] / "examples" / "scenarios" / "segment-winners.sw"
    campaign = load_policy_set([path], schema).campaign("spring_sale")
    signals = {**GERMAN, "time.daypart": "night"}
    runtime = BanditRuntime(rng=random.Random(SEED))
    runtime.install([from_compiled(campaign)])
    records: list[DecisionRecord] = []
    for chooser in (RuleChooser(random.Random(SEED)), BanditChooser(runtime)):
        choice = _holdout_choice(chooser, campaign, signals)
        records.append(decision_record(choice, "d-1", 1.0, "p-1", format="json"))
    rules, bandit = (msgspec.structs.asdict(r) for r in records)
    assert rules.pop("model_version") == RULES_MODEL and bandit.pop("model_version") == "v0"
    assert bandit.pop("signals").items() <= rules.pop("signals").items()
    assert rules == bandit
    record = records[0]
    assert record.holdout and record.holdout_share == 0.1 and record.personal
    assert record.slots == []  # nothing was served
    assert record.eligible["image"] == tuple(f"image_{n}" for n in range(9))  # night: no 9
    assert list(record.eligible) == ["image", "headline", "cta"]


@pytest.mark.parametrize(
    ("signals", "personal"),
    [
        (FRENCH, True),
        ({**FRENCH, "user.is_new": True}, False),  # a new user: nothing to personalise on
        (CONTEXTUAL, False),
    ],
    ids=["known", "new", "no-consent"],
)
def test_personal_means_consent_and_a_known_user_for_both(
    make_chooser: ChooserFactory, campaign: CompiledCampaign, signals: Signals, personal: bool
) -> None:
    chooser = make_chooser(SEED)
    eligibility = _eligible(campaign, signals)
    consented = signals["consent.level"] == "personal"
    for n in range(50):
        subject = Gathered(signals, consented, f"u{n}").subject  # as the campaigns step reads it
        choice = chooser.choose(campaign, eligibility, signals, subject)
        assert choice.personal is personal
        assert not personal or "user.is_new" in choice.signals
        if not personal and signals is CONTEXTUAL:
            assert not any(name.startswith(("user.", "cart.")) for name in choice.signals)
