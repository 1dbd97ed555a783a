"""The ad server's inventory: campaigns, creatives and the markup it serves.

Three kinds of answers, as real ad servers give them:

- JSON creatives per placement (``GET /ads/{placement}``), the shape a publisher's page script
  renders: campaign and creative ids, headline, image, call to action, click URL, trackers;
- OpenRTB 2.6 bid responses (``POST /openrtb/bid``) whose ``adm`` is Native 1.2 markup (assets as
  in the IAB Native 1.2 example 6.1: title, main image, icon, sponsor and description data, a
  call to action) or VAST for video impressions;
- VAST 4.1 inline linear ads (``GET /vast/{placement}``), structured like the IAB sample
  Inline_Linear_Tag (impression, creative with media files, click-through, a companion).
"""

from __future__ import annotations

from typing import Any, Final

AD_HOST: Final = "https://adserver.example"

# placement -> (campaign id, creative)
JSON_PLACEMENTS: Final[dict[str, tuple[str, dict[str, str]]]] = {
    "home-top": (
        "cmp-spring",
        {
            "id": "cr-spring-1",
            "headline": "Spring collection",
            "image_url": "https://cdn.example/spring/default.jpg",
            "cta": "Shop",
            "click_url": "https://shop.example/spring?utm_source=adserver",
        },
    ),
    "article-side": (
        "cmp-spring",
        {
            "id": "cr-spring-2",
            "headline": "New in for spring",
            "image_url": "https://cdn.example/spring/side.jpg",
            "cta": "Discover",
            "click_url": "https://shop.example/spring?utm_source=adserver&p=side",
        },
    ),
    "footer": (
        "cmp-evergreen",
        {
            "id": "cr-evergreen-1",
            "headline": "Free delivery, always",
            "image_url": "https://cdn.example/evergreen.jpg",
            "cta": "Learn more",
            "click_url": "https://shop.example/delivery",
        },
    ),
}


def json_ad(placement: str, request_id: str) -> dict[str, Any] | None:
    """The JSON creative served at a placement, or None for an unknown placement."""
    entry = JSON_PLACEMENTS.get(placement)
    if entry is None:
        return None
    campaign_id, creative = entry
    return {
        "request_id": request_id,
        "placement": placement,
        "campaign_id": campaign_id,
        "creative": dict(creative),
        "tracking": {
            "impressions": [f"{AD_HOST}/imp?c={campaign_id}&r={request_id}"],
            "clicks": [f"{AD_HOST}/clk?c={campaign_id}&r={request_id}"],
        },
        "ttl": 300,
    }


def native_markup(request_id: str) -> dict[str, Any]:
    """Native 1.2 response markup; asset ids match the IAB 6.1 request (123 title, 128 main
    image, 124 icon, 126 sponsored, 127 description) plus 129 call to action (data type 12)."""
    return {
        "native": {
            "ver": "1.2",
            "link": {
                "url": "https://shop.example/outdoor?utm_source=native",
                "clicktrackers": [f"{AD_HOST}/clk?c=cmp-native&r={request_id}"],
            },
            "assets": [
                {"id": 123, "required": 1, "title": {"text": "Gear up for the trails"}},
                {
                    "id": 128,
                    "required": 0,
                    "img": {"url": "https://cdn.example/native/main.jpg", "w": 1200, "h": 627},
                },
                {
                    "id": 124,
                    "required": 1,
                    "img": {"url": "https://cdn.example/native/icon.png", "w": 50, "h": 50},
                },
                {"id": 126, "required": 1, "data": {"value": "Outdoor Co."}},
                {"id": 127, "required": 1, "data": {"value": "Light, tough, ready for spring."}},
                {"id": 129, "required": 0, "data": {"type": 12, "value": "Shop now"}},
            ],
            "eventtrackers": [
                {"event": 1, "method": 1, "url": f"{AD_HOST}/imp?c=cmp-native&r={request_id}"}
            ],
            "privacy": "https://adserver.example/privacy",
        }
    }


NATIVE_REQUEST_ASSETS: Final = [
    {"id": 123, "required": 1, "title": {"len": 140}},
    {"id": 128, "required": 0, "img": {"wmin": 836, "hmin": 627, "type": 3}},
    {"id": 124, "required": 1, "img": {"wmin": 50, "hmin": 50, "type": 1}},
    {"id": 126, "required": 1, "data": {"type": 1, "len": 25}},
    {"id": 127, "required": 1, "data": {"type": 2, "len": 140}},
    {"id": 129, "required": 0, "data": {"type": 12, "len": 15}},
]

_VAST: Final = """<?xml version="1.0" encoding="UTF-8"?>
<VAST version="4.1" xmlns="http://www.iab.com/VAST">
  <Ad id="{ad_id}" sequence="1" conditionalAd="false">
    <InLine>
      <AdSystem version="1">slotwise example ad server</AdSystem>
      <Error><![CDATA[{host}/err?c={ad_id}&code=[ERRORCODE]]]></Error>
      <Impression id="adserver"><![CDATA[{host}/imp?c={ad_id}&r={request_id}]]></Impression>
      <AdServingId>{request_id}</AdServingId>
      <AdTitle>Spring outdoor film</AdTitle>
      <Description><![CDATA[Thirty seconds of trails.]]></Description>
      <Creatives>
        <Creative id="cr-video-1" sequence="1" adId="cr-video-1">
          <UniversalAdId idRegistry="ad-id.org">SLOT0001000H</UniversalAdId>
          <Linear>
            <Duration>00:00:30</Duration>
            <TrackingEvents>
              <Tracking event="start"><![CDATA[{host}/ev?e=start&r={request_id}]]></Tracking>
              <Tracking event="complete"><![CDATA[{host}/ev?e=complete&r={request_id}]]></Tracking>
            </TrackingEvents>
            <MediaFiles>
              <MediaFile id="mp4-720" delivery="progressive" type="video/mp4" width="1280" height="720" bitrate="2000" minBitrate="1500" maxBitrate="2500" scalable="1" maintainAspectRatio="1" codec="H.264"><![CDATA[https://cdn.example/video/spring-720.mp4]]></MediaFile>
            </MediaFiles>
            <VideoClicks>
              <ClickThrough id="adserver"><![CDATA[https://shop.example/outdoor?utm_source=video]]></ClickThrough>
              <ClickTracking id="adserver"><![CDATA[{host}/clk?c={ad_id}&r={request_id}]]></ClickTracking>
            </VideoClicks>
          </Linear>
        </Creative>
        <Creative id="cr-video-1-companion" sequence="1">
          <CompanionAds>
            <Companion id="1" width="300" height="250">
              <StaticResource creativeType="image/png"><![CDATA[https://cdn.example/video/companion.png]]></StaticResource>
              <CompanionClickThrough><![CDATA[https://shop.example/outdoor]]></CompanionClickThrough>
            </Companion>
          </CompanionAds>
        </Creative>
      </Creatives>
    </InLine>
  </Ad>
</VAST>
"""  # noqa: E501


def vast(ad_id: str, request_id: str) -> str:
    """A VAST 4.1 inline linear ad (Ad id = the campaign id, as this ad server does it)."""
    return _VAST.format(ad_id=ad_id, host=AD_HOST, request_id=request_id)
