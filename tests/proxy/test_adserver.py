"""The example ad server answers in the formats the adapters read, with the demo's campaign ids."""

from __future__ import annotations

import json

import httpx

from examples.adserver.app import app
from examples.adserver.creatives import NATIVE_REQUEST_ASSETS
from slotwise.dsl.location import parse_location
from slotwise.proxy.adapters import parse_response
from slotwise.proxy.adapters.openrtb import BidResponseDocument
from slotwise.proxy.adapters.vast import VastDocument


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ads.test")


async def test_json_creatives() -> None:
    async with _client() as client:
        response = await client.get("/ads/home-top")
        doc = parse_response(response.headers["content-type"].encode(), response.content)
        assert doc is not None
        (unit,) = doc.units
        assert unit.signals["ad.campaign_id"] == "cmp-spring"
        assert unit.signals["ad.placement"] == "home-top"
        for path in ("$.creative.headline", "$.creative.image_url", "$.creative.cta"):
            assert unit.read(parse_location(path))
        assert (await client.get("/ads/nowhere")).status_code == 404


async def test_openrtb_native_and_video_bids() -> None:
    request = {
        "id": "b1",
        "imp": [
            {
                "id": "1",
                "tagid": "feed",
                "native": {"request": json.dumps({"assets": NATIVE_REQUEST_ASSETS})},
            },
            {"id": "2", "video": {"mimes": ["video/mp4"]}},
            {"id": "3", "banner": {"w": 300, "h": 250}},
        ],
    }
    body = json.dumps(request).encode()
    async with _client() as client:
        response = await client.post("/openrtb/bid", content=body)
        doc = parse_response(b"application/json", response.content, body)
        assert isinstance(doc, BidResponseDocument)
        native, video = doc.units
        assert native.signals == {
            "ad.format": "openrtb",
            "ad.campaign_id": "cmp-native",
            "ad.creative_id": "cr-native-1",
            "ad.placement": "feed",
        }
        assert (
            native.read(parse_location("native:img:main")) == "https://cdn.example/native/main.jpg"
        )
        assert native.read(parse_location("native:data:ctatext")) == "Shop now"
        assert video.read(parse_location("vast:AdTitle")) == "Spring outdoor film"
        no_bid = await client.post("/openrtb/bid", content=b'{"id": "x", "imp": []}')
        assert no_bid.status_code == 204 and no_bid.content == b""
        assert (await client.post("/openrtb/bid", content=b"nope")).status_code == 400


async def test_vast_preroll() -> None:
    async with _client() as client:
        response = await client.get("/vast/preroll")
        doc = parse_response(response.headers["content-type"].encode(), response.content)
        assert isinstance(doc, VastDocument)
        (ad,) = doc.units
        assert ad.signals["ad.campaign_id"] == "cmp-video"
        for element in ("AdTitle", "MediaFile", "ClickThrough", "Companion"):
            assert ad.read(parse_location(f"vast:{element}"))
