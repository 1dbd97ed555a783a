"""The campaigns step: every campaign that applies, per ad unit, in policy order; skips counted.

End to end through the proxy (an OpenRTB response, a storefront page): tests/proxy/test_decide.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from slotwise.proxy.exchange import FailOpen
from slotwise.proxy.personalisers.campaigns import Campaigns
from tests.proxy.personalisers.support import (
    campaigns_of,
    compile_policy,
    engine,
    run,
    served,
)

HOME = {
    "placement": "home",
    "hero": {"title": "Welcome", "image": "https://cdn.example/hero.jpg"},
    "banner": {"text": "Free returns"},
    "tracking": {"impressions": []},
}
HERO = """
campaign hero {
  applies when ad.placement == "home"
  slot title at "$.hero.title" { variant fresh "Fresh for spring" }
}
"""
BANNER = """
campaign banner {
  applies when ad.placement == "home"
  slot text at "$.banner.text" { variant cart "Your cart is waiting" }
}
"""


def test_several_campaigns_apply_to_one_document_in_policy_order() -> None:
    proxy = engine()
    exchange = run(proxy, compile_policy(HERO + BANNER), HOME)
    page = served(exchange)
    assert page["hero"]["title"] == "Fresh for spring"
    assert page["banner"]["text"] == "Your cart is waiting"
    assert campaigns_of(exchange) == ["hero", "banner"]
    # each decision has its own trackers
    ids = [record.id for record, _ in exchange.records or ()]
    pixels = page["tracking"]["impressions"]
    assert len(pixels) == 2 and all(i in p for i, p in zip(ids, pixels, strict=True))
    assert proxy.metrics.campaigns_skipped.values == {}


def test_each_bid_of_an_openrtb_response_gets_the_campaigns_that_apply_to_it() -> None:
    policy = compile_policy(
        """
campaign outdoor {
  applies when ad.campaign_id == "cmp-a"
  slot title at "native:title" { variant a "Outdoor title" }
}
campaign city {
  applies when ad.campaign_id == "cmp-b"
  slot title at "native:title" { variant b "City title" }
}
"""
    )
    response = {
        "id": "r",
        "seatbid": [{"bid": [_bid("1", "cmp-a"), _bid("2", "cmp-b"), _bid("3", "cmp-c")]}],
    }
    exchange = run(engine(), policy, response)
    titles = [_title(bid) for bid in served(exchange)["seatbid"][0]["bid"]]
    assert titles == ["Outdoor title", "City title", "Original"]
    assert campaigns_of(exchange) == ["outdoor", "city"]
    assert {record.format for record, _ in exchange.records or ()} == {"openrtb"}


def test_a_campaign_missing_a_slot_is_skipped_and_counted_while_another_is_served() -> None:
    proxy = engine()
    page = {key: value for key, value in HOME.items() if key != "banner"}
    exchange = run(proxy, compile_policy(BANNER + HERO), page)
    assert served(exchange)["hero"]["title"] == "Fresh for spring"
    assert campaigns_of(exchange) == ["hero"]  # nothing was decided for the banner: no record
    assert exchange.cause is None
    assert proxy.metrics.campaigns_skipped.values == {("banner", "missing_slot"): 1.0}


def test_a_response_whose_campaigns_all_miss_slots_passes_through_as_such() -> None:
    proxy = engine()
    exchange = run(proxy, compile_policy(BANNER), {"placement": "home"})
    assert exchange.out is None and exchange.records is None and exchange.cause is None
    assert exchange.reason == "missing_slot"


def test_a_location_taken_by_an_earlier_campaign_is_not_written_again() -> None:
    proxy = engine()
    rival = HERO.replace("campaign hero", "campaign rival").replace(
        'variant fresh "Fresh for spring"', 'variant other "Another title"'
    )
    policy = compile_policy(HERO + rival + BANNER)
    assert [w.code for w in policy.warnings] == ["contested_location"]
    exchange = run(proxy, policy, HOME)
    assert served(exchange)["hero"]["title"] == "Fresh for spring"
    assert campaigns_of(exchange) == ["hero", "banner"]
    assert proxy.metrics.campaigns_skipped.values == {("rival", "contested"): 1.0}
    metrics = proxy.metrics.render()
    assert 'slotwise_campaigns_skipped_total{campaign="rival",reason="contested"} 1' in metrics


def test_a_held_out_campaign_still_takes_its_locations() -> None:
    # its users are the control group: they must see the upstream's text, not another's
    proxy = engine()
    held = HERO.replace("}\n}", "}\n  holdout 100%\n}")
    rival = HERO.replace("campaign hero", "campaign rival").replace("fresh", "other")
    exchange = run(proxy, compile_policy(held + rival), HOME)
    (record, _), *rest = exchange.records or []
    assert record.campaign == "hero" and record.holdout and not rest
    assert proxy.metrics.campaigns_skipped.get("rival", "contested") == 1
    # nothing written but the control decision's own trackers (see the next test)
    page = served(exchange)
    assert page["hero"] == HOME["hero"] and page["banner"] == HOME["banner"]
    assert [record.id in pixel for pixel in page["tracking"]["impressions"]] == [True]


def test_a_control_response_keeps_the_creative_and_carries_the_same_trackers() -> None:
    # the control arm is measured like the personalised one: same pixels, same click wrapping
    held = HERO.replace("}\n}", "}\n  holdout 100%\n}")
    page = dict(HOME, click_url="https://shop.example/spring")
    control, personalised = engine(), engine()
    shown = run(control, compile_policy(held), page)
    treated = run(personalised, compile_policy(HERO), page)
    (record, _), *_ = shown.records or []
    (other, _), *_ = treated.records or []
    assert record.holdout and not record.slots and record.eligible == {"title": ("fresh",)}
    assert not other.holdout and other.slots

    def tracked(decision_id: str, signer: Any) -> dict[str, Any]:
        # the upstream's page with one decision's trackers, as tracking.py writes them
        trackers = signer.trackers(decision_id, "http://proxy.test")
        return dict(
            page,
            click_url=trackers.signer.redirect(decision_id, page["click_url"]),
            tracking={"impressions": [trackers.impression], "clicks": [trackers.click]},
        )

    assert served(shown) == tracked(record.id, control.signer)  # the creative untouched
    assert served(treated) == dict(
        tracked(other.id, personalised.signer), hero=dict(HOME["hero"], title="Fresh for spring")
    )
    assert served(shown)["tracking"]["impressions"] == [
        f"http://proxy.test/_sw/px?t=impression&did={record.id}"
    ]


def test_a_failing_chooser_fails_the_response_open_with_what_was_decided() -> None:
    proxy = engine()

    class Failing:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def choose(self, campaign: Any, *args: Any) -> Any:
            if campaign.name == "banner":
                raise RuntimeError("model store gone")
            return self.inner.choose(campaign, *args)

    proxy.chooser = Failing(proxy.chooser)
    with pytest.raises(FailOpen) as failed:
        run(proxy, compile_policy(HERO + BANNER), HOME)
    assert failed.value.cause == "chooser_error"
    records = [record for record, _ in failed.value.records]
    assert [r.campaign for r in records] == ["hero", "banner"]
    assert {r.fail_open for r in records} == {"chooser_error"}
    assert all(r.slots == [] for r in records)


def test_the_step_is_wanted_when_there_are_campaigns_and_names_their_locations() -> None:
    step = Campaigns()
    policy = compile_policy(HERO + BANNER)
    assert step.wanted(policy) and not step.wanted(compile_policy(""))
    assert [(name, loc.text) for name, loc in step.locations(policy)] == [
        ("hero", "$.hero.title"),
        ("banner", "$.banner.text"),
    ]


def _bid(impid: str, cid: str) -> dict[str, Any]:
    markup = {"native": {"assets": [{"id": 1, "title": {"text": "Original"}}], "link": {}}}
    return {"id": f"b{impid}", "impid": impid, "price": 1.0, "cid": cid, "adm": json.dumps(markup)}


def _title(bid: dict[str, Any]) -> str:
    return str(json.loads(bid["adm"])["native"]["assets"][0]["title"]["text"])
