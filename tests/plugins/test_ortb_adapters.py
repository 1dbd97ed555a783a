"""One bid request, read by the providers and by the response adapter, decides one policy: the
signals of an OpenRTB exchange reach the rules of a campaign on the bid response's ad unit."""

from __future__ import annotations

import copy
import json

from slotwise.dsl.loader import compile_sources
from slotwise.plugins.gather import gather
from slotwise.plugins.registry import load_schema
from slotwise.proxy.adapters import parse_response
from slotwise.testing.provider import make_request, provider_set
from tests.plugins.openrtb_requests import (
    CONSENTING,
    EXCHANGE_AGENT,
    NOW,
    VENDOR,
    iphone_in_germany,
    published,
)

POLICY = """policy "rtb" version 1

segment german_phone_app: geo.country == "DE" and device.type == "mobile" and ortb.channel == "app"
segment personal: consent.level == "personal"

campaign rtb_video {
  applies when ad.campaign_id == "cmp-rtb"

  slot title at "vast:AdTitle" {
    variant plain "Sample VAST"
    variant de "Beispiel"
    variant tablet "Tablet"
  }

  rule "de" when german_phone_app and personal and "banner" in ortb.imp_types then pin title de
  rule "personal only" when not personal then exclude title de
}
"""


def _response_for(request: dict[str, object]) -> bytes:
    """The specification's VAST bid response (6.3.2), answering ``request``'s impression."""
    response = copy.deepcopy(published("openrtb2.6_07"))
    bid = response["seatbid"][0]["bid"][0]
    bid["impid"] = request["imp"][0]["id"]  # type: ignore[index]
    bid["cid"] = "cmp-rtb"
    return json.dumps(response).encode()


async def test_the_bid_requests_signals_decide_the_bid_responses_ad_unit() -> None:
    policy, _ = compile_sources([("rtb.sw", POLICY)], load_schema("builtins"))
    request = iphone_in_germany()
    body = json.dumps(request).encode()
    document = parse_response(b"application/json", _response_for(request), body)
    assert document is not None
    (unit,) = document.units
    # the adapter read the same bid request: the placement is the impression's tag id
    assert unit.signals["ad.placement"] == request["imp"][0]["tagid"]  # type: ignore[index]
    async with provider_set("builtins", config={"consent": {"vendor_id": VENDOR}}) as providers:
        gathered = await gather(
            providers,
            make_request(
                "/bid", body=body, headers={"User-Agent": EXCHANGE_AGENT}, received_at=NOW
            ),
        )
        withdrawn = await gather(
            providers,
            make_request(
                "/bid",
                body=iphone_in_germany(gdpr=1, consent=CONSENTING["tc"][:20]),
                received_at=NOW,
            ),
        )
    ctx = gathered.context(NOW, unit.signals)
    campaign = policy.select(ctx)
    assert campaign is not None and campaign.name == "rtb_video"
    assert campaign.eligible(ctx)["title"].choices == ("de",)
    # a malformed consent string: contextual, so the German copy is excluded, not an error
    contextual = withdrawn.context(NOW, unit.signals)
    assert withdrawn.signals["consent.reason"] == "tcf_malformed"
    assert "de" not in campaign.eligible(contextual)["title"].choices
