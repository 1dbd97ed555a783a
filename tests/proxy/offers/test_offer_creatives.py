"""Offer creatives served by the proxy (the app in front of a fake ad server, the published VAST
4.1 companion example): the control of the campaign and of the offer set, a spent budget, an ad
without a landing URL, and the landing URL's offer parameter."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from xml.etree import ElementTree

from slotwise.proxy.decision_codec import decode_stored
from slotwise.proxy.decision_log import DecisionRecord
from slotwise.proxy.offer_budget import budget_key, day_of
from slotwise.proxy.offer_chooser import OfferChooser
from slotwise.proxy.personalisers.offer_creatives import with_offer
from testing.proxy import Canned, ProxyUnderTest, proxy_client
from tests.conftest import TEST_DATA
from tests.support.timing import clear_of_boundary

VAST = (
    TEST_DATA / "iab" / "vast" / "VAST_4.1_Samples" / "Inline_Companion_Tag-test.xml"
).read_bytes()
NS = "{http://www.iab.com/VAST}"
TITLE, LANDING = "VAST 4.0 Pilot - Scenario 5", "https://iabtechlab.com"
PATIENT = {"proxy_decision_deadline_ms": 1000.0, "proxy_signals_deadline_ms": 500.0}

POLICY = """policy "ad offers" version 1

offers ad_deal {
  arms none, discount 10%, discount 20%
}

campaign preroll {
  applies when ad.format == "vast"
  slot description at "vast:Description" {
    variant spring "Spring trails"
  }
  slot title at "vast:AdTitle" from offers ad_deal
}
"""


def _vast(body: bytes = VAST) -> Canned:
    return Canned(200, (("Content-Type", "application/xml"),), body)


def _ad(body: bytes) -> tuple[str, str, str]:
    """The answer's AdTitle, Description and ClickThrough."""
    ad = ElementTree.fromstring(body).find(f"{NS}Ad/{NS}InLine")
    assert ad is not None
    texts = [
        (ad.findtext(path) or "").strip()
        for path in (f"{NS}AdTitle", f"{NS}Description", f".//{NS}ClickThrough")
    ]
    return texts[0], texts[1], texts[2]


async def _records(proxy: ProxyUnderTest) -> list[DecisionRecord]:
    runtime = proxy.app.runtime
    assert runtime is not None
    await runtime.engine.decision_log.flush()
    entries = await runtime.store.log_read("decisions", count=10_000)
    return [decode_stored(e.data) for e in entries]


def test_the_offer_id_joins_the_landing_query() -> None:
    assert with_offer("https://shop.example/a", "d.x") == "https://shop.example/a?sw_offer=d.x"
    assert with_offer("https://s.example/a?b=1", "d.x") == "https://s.example/a?b=1&sw_offer=d.x"
    assert with_offer("https://s.example/a?", "d.x") == "https://s.example/a?sw_offer=d.x"
    assert with_offer("https://s.example/a#top", "d.x") == "https://s.example/a?sw_offer=d.x#top"


async def test_the_offer_sets_control_keeps_the_ads_text_and_gets_no_offer_id() -> None:
    held_out = POLICY.replace("discount 20%\n", "discount 20%\n  holdout 100%\n")
    async with proxy_client({"/vast": _vast()}, policies={"a.sw": held_out}, **PATIENT) as proxy:
        answer = await proxy.client.get("/vast")
        title, description, landing = _ad(answer.content)
        assert (title, landing) == (TITLE, LANDING)  # the offer's slot and landing: upstream's
        assert description == "Spring trails"  # the campaign's own slot is served
        offer, campaign = sorted(await _records(proxy), key=lambda r: r.campaign)
        assert offer.campaign == "offers.ad_deal" and offer.holdout and offer.offer is None
        assert offer.format == "vast" and not campaign.holdout
        assert answer.content.count(b"/_sw/px?t=impression") == 2  # the control is measured


async def test_the_campaigns_control_gets_the_ad_unchanged_and_no_offer_decision() -> None:
    held_out = POLICY.replace('"vast"\n', '"vast"\n  holdout 100%\n')
    async with proxy_client({"/vast": _vast()}, policies={"a.sw": held_out}, **PATIENT) as proxy:
        answer = await proxy.client.get("/vast")
        assert _ad(answer.content) == (TITLE, _ad(VAST)[1], LANDING)
        [record] = await _records(proxy)
        assert record.campaign == "preroll" and record.holdout


async def test_a_spent_budget_leaves_the_ad_its_text_and_offers_none() -> None:
    settings = {"offers": {"base_currency": "USD", "budgets": {"ad_deal": 5.0},
                           "budget_refresh": 0.05}}  # fmt: skip
    await clear_of_boundary(86_400.0)  # the proxy reads the day the charge was made in
    async with proxy_client(
        {"/vast": _vast()}, policies={"a.sw": POLICY}, **PATIENT, **settings
    ) as proxy:
        runtime = proxy.app.runtime
        assert runtime is not None and runtime.engine.offers.budgets is not None
        await runtime.store.incr(budget_key("ad_deal", day_of(time.time())), 600)  # 6.00 of 5
        for _ in range(200):
            if "ad_deal" in runtime.engine.offers.budgets.spent:
                break
            await asyncio.sleep(0.05)
        for _ in range(10):
            title, _, landing = _ad((await proxy.client.get("/vast")).content)
            assert title == TITLE and landing.startswith(LANDING + "?sw_offer=")
            assert landing.endswith(".none")
        offers = [r for r in await _records(proxy) if r.campaign == "offers.ad_deal"]
        assert len(offers) == 10
        for record in offers:
            assert record.slots[0].variant == "none"
            assert record.removed == {"discount_10": ("budget_spent",),
                                      "discount_20": ("budget_spent",)}  # fmt: skip


async def test_an_ad_without_a_landing_url_gets_no_offer() -> None:
    start = VAST.index(b"<VideoClicks>")
    end = VAST.index(b"</VideoClicks>") + len(b"</VideoClicks>")
    without = VAST[:start] + VAST[end:]
    async with proxy_client(
        {"/vast": _vast(without)}, policies={"a.sw": POLICY}, **PATIENT
    ) as proxy:
        answer = await proxy.client.get("/vast")
        title, description, _ = _ad(answer.content)
        assert (title, description) == (TITLE, "Spring trails")
        [record] = await _records(proxy)
        assert record.campaign == "preroll"
        metrics = (await proxy.client.get("/_sw/metrics")).text
        assert (
            'slotwise_campaigns_skipped_total{campaign="offers.ad_deal",reason="missing_slot"} 1'
            in metrics
        )


async def test_a_failing_offer_chooser_fails_the_ad_open_and_logs_both_decisions() -> None:
    class Failing(OfferChooser):
        def choose(self, *args: object) -> Any:
            raise RuntimeError("model store gone")

    async with proxy_client({"/vast": _vast()}, policies={"a.sw": POLICY}, **PATIENT) as proxy:
        runtime = proxy.app.runtime
        assert runtime is not None
        working = runtime.engine.offers
        failing = Failing(None, working.config, working.budgets)
        runtime.engine.offers = failing
        response = await proxy.client.get("/vast")
        assert response.content == VAST  # the upstream's ad, untouched
        records = {r.campaign: r for r in await _records(proxy)}
        assert set(records) == {"preroll", "offers.ad_deal"}
        for record in records.values():
            assert record.fail_open == "chooser_error" and not record.slots, record
