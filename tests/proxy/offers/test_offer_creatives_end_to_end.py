"""Offers in ad creatives through real processes: `slotwise serve` in front of an ad server
answering with published IAB formats (an OpenRTB 2.6 bid response carrying the Native 1.2
example 6.1 markup, the VAST 4.1 companion example) writes the chosen offer into campaign slots
that take it from an offer set and its id into the ad's landing URL; a guarded arm never
appears; the offer set's control keeps the upstream's creative; purchases carrying the offer id
join the offer decisions, and `slotwise learn --once` learns the offer set from them."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

import httpx
import pytest

from tests.conftest import TEST_DATA
from tests.proxy.support import Canned, upstream_server
from tests.support.cli import run_slotwise, slotwise_serve

IAB = TEST_DATA / "iab"
NATIVE_RESPONSE = IAB / "native-1.2" / "native1.2_6.1_social_clickout_bid_response.normalized.json"
NATIVE_REQUEST = IAB / "native-1.2" / "native1.2_6.1_social_clickout_bid_request.normalized.json"
VAST_AD = IAB / "vast" / "VAST_4.1_Samples" / "Inline_Companion_Tag-test.xml"
VAST_NS = "{http://www.iab.com/VAST}"

POLICY = """policy "ad offers" version 1

offers ad_deal {
  arms none, discount 10%, discount 20%, free_shipping
  optimize revenue - discount_cost
  guard discount <= 10%
  guard no free_shipping when ad.format == "vast"
  holdout 25%
}

campaign native_feed {
  applies when ad.format == "openrtb"
  slot headline at "native:title" {
    variant spring "Spring deals are here"
  }
  slot deal at "native:data:desc" from offers ad_deal
}

campaign preroll {
  applies when ad.format == "vast"
  slot landing at "vast:ClickThrough" {
    variant spring "https://shop.example/spring"
  }
  slot title at "vast:AdTitle" from offers ad_deal
  slot fine_print at "vast:Description" from offers ad_deal terms
}
"""
CONFIG = """
[offers]
base_currency = "USD"
shipping_cost = 5.0
"""
LABELS = {"discount": "10% off your order", "free_shipping": "Free shipping"}
TERMS = {
    "discount": "On the eligible subtotal of this order.",
    "free_shipping": "Standard shipping on this order is free.",
}


def _bid_request() -> bytes:
    native = json.loads(NATIVE_REQUEST.read_bytes())
    request = {"id": "req-1", "imp": [{"id": "1", "tagid": "feed",
                                       "native": {"request": json.dumps(native)}}]}  # fmt: skip
    return json.dumps(request).encode()


def _bid_response() -> bytes:
    markup = NATIVE_RESPONSE.read_text()
    bid = {"id": "b1", "impid": "1", "price": 1.5, "cid": "cmp-native", "adm": markup}
    return json.dumps({"id": "req-1", "seatbid": [{"bid": [bid]}]}).encode()


def _native_of(body: bytes) -> Any:
    adm = json.loads(body)["seatbid"][0]["bid"][0]["adm"]
    native = json.loads(adm)["native"]
    assert isinstance(native, dict)
    return native


def _offer_of(url: str) -> str | None:
    found = parse_qs(urlsplit(url).query).get("sw_offer")
    return found[0] if found else None


def _purchase(number: int, offer: str) -> dict[str, object]:
    arm = offer.partition(".")[2]
    discount = 10 if arm == "discount_10" else 0
    return {
        "type": "purchase",
        "id": f"purchase-{number}",
        "user_id": f"u{number}",
        "properties": {
            "order_id": f"order-{number}",
            "items": [{"product_id": "sku-1", "price": 60.0, "quantity": 2}],
            "value": 120.0 * (1 - discount / 100),
            "currency": "USD",
            "offer_id": offer,
        },
    }


@pytest.mark.slow
async def test_offers_in_openrtb_and_vast_creatives_are_served_joined_and_learned(
    tmp_path: Path,
) -> None:
    store, models = f"sqlite:///{tmp_path}/state.db?timeout=2", tmp_path / "models"
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "ads.sw").write_text(POLICY)
    config = tmp_path / "slotwise.toml"
    config.write_text(CONFIG)
    upstream_native = _native_of(_bid_response())
    upstream_vast = VAST_AD.read_bytes()
    routes = {
        "/openrtb/bid": Canned(200, [("Content-Type", "application/json")], _bid_response()),
        "/vast/preroll": Canned(200, [("Content-Type", "application/xml")], upstream_vast),
    }
    env = dict(os.environ, SLOTWISE_PLUGINS="builtins")
    async with upstream_server(routes) as upstream:
        serve_args = ("--upstream", upstream.url, "--policies", str(policies), "--store", store,
                      "--models", str(models), "--config", str(config))  # fmt: skip
        async with slotwise_serve(env, *serve_args) as base:
            async with httpx.AsyncClient(base_url=base) as client:
                offers: list[str] = []
                arms: dict[str, set[str]] = {"native": set(), "vast": set()}
                held_out = {"native": 0, "vast": 0}
                started = time.monotonic()
                for i in range(40):
                    cookie = {"cookie": f"sw_uid=n{i}"}
                    page = await client.post("/openrtb/bid", content=_bid_request(), headers=cookie)
                    assert page.status_code == 200
                    native = _native_of(page.content)
                    assets = {a["id"]: a for a in native["assets"]}
                    assert assets[123]["title"]["text"] == "Spring deals are here"
                    desc = assets[127]["data"]["value"]
                    upstream_desc = upstream_native["assets"][4]["data"]["value"]
                    url = native["link"]["url"]
                    offer = _offer_of(url)
                    if offer is None:  # the offer set's control: the upstream's text, no offer
                        held_out["native"] += 1
                        assert url == "http://i.am.a/URL" and desc == upstream_desc
                    else:
                        arm = offer.partition(".")[2]
                        arms["native"].add(arm)
                        kind = "discount" if arm.startswith("discount") else arm
                        assert desc == (upstream_desc if arm == "none" else LABELS[kind])
                        assert url == f"http://i.am.a/URL?sw_offer={offer}"
                        offers.append(offer)
                    # the campaign's and the offer decision's impression trackers
                    trackers = [t["url"] for t in native["eventtrackers"]]
                    assert sum("/_sw/px?t=impression" in t for t in trackers) == 2

                    video = await client.get("/vast/preroll", headers={"cookie": f"sw_uid=v{i}"})
                    assert video.status_code == 200
                    ad = ElementTree.fromstring(video.content).find(f"{VAST_NS}Ad/{VAST_NS}InLine")
                    assert ad is not None
                    title = (ad.findtext(f"{VAST_NS}AdTitle") or "").strip()
                    fine_print = (ad.findtext(f"{VAST_NS}Description") or "").strip()
                    click = (ad.findtext(f".//{VAST_NS}ClickThrough") or "").strip()
                    offer = _offer_of(click)
                    if offer is None:
                        held_out["vast"] += 1
                        assert click == "https://shop.example/spring"
                        assert title == "VAST 4.0 Pilot - Scenario 5"
                        assert fine_print.startswith("This is sample companion ad tag")
                    else:
                        arm = offer.partition(".")[2]
                        arms["vast"].add(arm)
                        assert click == f"https://shop.example/spring?sw_offer={offer}"
                        if arm == "none":
                            assert title == "VAST 4.0 Pilot - Scenario 5"
                        else:
                            assert (title, fine_print) == (LABELS["discount"], TERMS["discount"])
                        offers.append(offer)
                    impressions = ad.findall(f"{VAST_NS}Impression")
                    assert sum("/_sw/px" in (e.text or "") for e in impressions) == 2
                # guards: discount_20 never, free_shipping never on video
                assert "discount_20" not in arms["native"] | arms["vast"]
                assert "free_shipping" not in arms["vast"]
                assert arms["native"] >= {"none", "discount_10"} and "none" in arms["vast"]
                assert held_out["native"] > 0 and held_out["vast"] > 0
                purchases = [_purchase(i, offer) for i, offer in enumerate(offers) if i % 2]
                batch = {"events": purchases, "consent": "personal"}
                stored = await client.post("/_sw/events", json=batch)
                assert stored.status_code == 200, stored.text
                assert stored.json()["accepted"] == len(purchases)
                window = f"{time.monotonic() - started + 0.5:.1f}"
                await asyncio.sleep(float(window) + 0.3)
                out = await run_slotwise(
                    env, "learn", "--policies", str(policies), "--store", store,
                    "--models", str(models), "--window", window, "--once", "--config", str(config),
                )  # fmt: skip
                learned = re.search(r"offers\.ad_deal: published v1 \((\d+) examples\)", out)
                assert learned is not None, out
                assert int(learned.group(1)) >= len(offers)
            decisions = tmp_path / "decisions.jsonl"
            await run_slotwise(env, "export", "decisions", "--store", store, "-o", str(decisions))
            records = [json.loads(line) for line in decisions.read_text().splitlines()]
            offer_records = [r for r in records if r["campaign"] == "offers.ad_deal"]
            assert len(offer_records) == 80  # one offer decision per ad, control included
            assert {r["format"] for r in offer_records} == {"openrtb", "vast"}
            served = {r["offer"] for r in offer_records if r.get("offer")}
            assert served == set(offers)
            for record in offer_records:
                removed = record.get("removed") or {}
                assert removed["discount_20"] == ["guard discount <= 10%"]
                if record["format"] == "vast":
                    assert removed["free_shipping"] == [
                        'guard no free_shipping when ad.format == "vast"'
                    ]
            # the purchases joined their offer decisions: the events export reads them so
            rewards_file = tmp_path / "events.jsonl"
            await run_slotwise(
                env, "export", "events", "--store", store, "--config", str(config),
                "-o", str(rewards_file),
            )  # fmt: skip
            rewards = [json.loads(line) for line in rewards_file.read_text().splitlines()]
            joined = {r["decision_id"] for r in rewards}
            assert joined == {p["properties"]["offer_id"].partition(".")[0] for p in purchases}
