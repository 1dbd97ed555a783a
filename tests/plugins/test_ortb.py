"""Signals of OpenRTB traffic: placement (ortb), identifiers (ortb_user), and device, geo and
request read from the bid request, the exchange's HTTP headers filling only what it lacks."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from slotwise.plugins.builtin.device import DeviceProvider
from slotwise.plugins.builtin.ortb import MAX_ITEMS, OrtbProvider, OrtbUserProvider
from slotwise.plugins.gather import gather
from slotwise.testing.provider import make_request, provider_set
from slotwise.types import SignalValue
from tests.plugins.mmdb import city_record, write_mmdb
from tests.plugins.openrtb_requests import (
    EXCHANGE_AGENT,
    NOW,
    VENDOR,
    iphone_in_germany,
    published,
)

CHROME_HEADERS = {
    "User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Accept-Language": "fr-FR,fr;q=0.9",
    "Referer": "https://www.news.example/story",
    "CF-IPCountry": "FR",
}


async def _signals(*providers: Any, body: Any, **request: Any) -> dict[str, SignalValue]:
    request.setdefault("headers", {"User-Agent": EXCHANGE_AGENT})
    config = request.pop("config", None)
    async with provider_set(*providers, config=config) as loaded:
        got = await gather(loaded, make_request("/bid", body=body, received_at=NOW, **request))
    return dict(got.signals)


# -- ortb: the placement, from the published examples -----------------------------------------

EXPECTED = {
    "openrtb2.6_01": {
        "ortb.channel": "site",
        "ortb.site_domain": "foobar.com",
        "ortb.publisher_id": "8953",
        "ortb.categories": ("IAB3-1",),
        "ortb.imp_count": 1,
        "ortb.imp_types": ("banner",),
        "ortb.imp_formats": ("300x250",),
        "ortb.imp_w": 300,
        "ortb.imp_h": 250,
    },
    "openrtb2.6_03": {
        "ortb.channel": "app",
        "ortb.app_bundle": "12345",
        "ortb.publisher_id": "agltb3B1Yi1pbmNyDAsSA0FwcBiJkfTUCV",
        "ortb.categories": ("IAB15", "IAB15-10"),
        "ortb.imp_count": 1,
        "ortb.imp_types": ("banner",),
        "ortb.imp_formats": ("728x90",),
        "ortb.imp_w": 728,
        "ortb.imp_h": 90,
        "ortb.interstitial": False,
    },
    "openrtb2.6_04": {
        "ortb.channel": "site",
        "ortb.site_domain": "siteabcd.com",
        "ortb.publisher_id": "pub12345",
        "ortb.categories": ("IAB2-1", "IAB2-2"),
        "ortb.imp_count": 1,
        "ortb.imp_types": ("video",),
        "ortb.imp_formats": ("640x480",),
        "ortb.imp_w": 640,
        "ortb.imp_h": 480,
    },
}


@pytest.mark.parametrize("name", EXPECTED)
async def test_placement_of_the_published_examples(name: str) -> None:
    got = await _signals(OrtbProvider, body=published(name))
    assert got == EXPECTED[name]


async def test_every_published_request_yields_typed_placement_signals() -> None:
    for number in range(1, 6):
        got = await _signals(OrtbProvider, body=published(f"openrtb2.6_0{number}"))
        assert got["ortb.channel"] in ("site", "app") and got["ortb.imp_count"] == 1


async def test_several_impressions_and_formats() -> None:
    body = {
        "imp": [
            {"id": "1", "banner": {"format": [{"w": 300, "h": 250}, {"w": 320, "h": 50}]}},
            {"id": "2", "video": {"w": 1920, "h": 1080}, "banner": {"w": 300, "h": 250}},
            {"id": "3", "native": {"request": "{}"}, "instl": 1},
            {"id": "4", "audio": {"mimes": ["audio/mp4"]}},
        ],
        "site": {"page": "https://WWW.Shop.Example/p/1", "cat": ["IAB22"] * 3},
        "dooh": {},
    }
    got = await _signals(OrtbProvider, body=body)
    assert got["ortb.imp_count"] == 4
    assert got["ortb.imp_types"] == ("banner", "video", "native", "audio")
    assert got["ortb.imp_formats"] == ("300x250", "320x50", "1920x1080")
    assert (got["ortb.imp_w"], got["ortb.imp_h"]) == (300, 250)  # the first format
    assert got["ortb.site_domain"] == "shop.example"  # the page's host when there is no domain
    assert got["ortb.categories"] == ("IAB22",)
    assert "ortb.interstitial" not in got  # the first impression does not say


async def test_what_a_bid_request_can_put_into_the_signals_is_bounded() -> None:
    body = {
        "imp": [{"id": str(i), "banner": {"w": 100 + i, "h": 50}} for i in range(100)],
        "app": {"bundle": "x" * 10_000, "cat": [f"IAB{i}" for i in range(100)]},
    }
    got = await _signals(OrtbProvider, body=body)
    assert got["ortb.imp_count"] == 100
    assert len(got["ortb.imp_formats"]) == MAX_ITEMS  # type: ignore[arg-type]
    assert len(got["ortb.categories"]) == MAX_ITEMS  # type: ignore[arg-type]
    assert "ortb.app_bundle" not in got


async def test_no_bid_request_no_placement_signals() -> None:
    assert await _signals(OrtbProvider, body=b"") == {}
    assert await _signals(OrtbProvider, body={"products": [1, 2]}) == {}


async def test_broken_bid_requests_are_counted() -> None:
    async with provider_set(OrtbProvider) as providers:
        for body in (b'{"imp": [', b'{"imp": [{"id": 1, "banner": {"w": "wide"}}]}', b"{}"):
            await gather(providers, make_request(body=body))
    assert providers.by_name["ortb"].metrics.fallbacks == {
        "bid_request_malformed": 1,
        "bid_request_invalid": 1,
    }


# -- ortb_user: identifiers, only with consent ------------------------------------------------

CONSENT = {"consent": {"vendor_id": VENDOR}}


async def test_identifiers_with_consent() -> None:
    body = iphone_in_germany()
    body["user"]["buyeruid"] = "buyer-42"
    got = await _signals("consent", OrtbUserProvider, body=body, config=CONSENT)
    assert got["user.ifa"] == "AA000DFE74168477C70D291f574D344790E0BB11"
    assert got["user.exchange_uid"] == "ffffffd5135596709273b3a1a07e466ea2bf4fff"
    assert got["user.buyer_uid"] == "buyer-42"


async def test_no_identifiers_without_consent_even_for_contextual_providers() -> None:
    body = iphone_in_germany(gdpr=1, consent=None)
    got = await _signals("consent", OrtbUserProvider, OrtbProvider, body=body, config=CONSENT)
    assert got["consent.level"] == "contextual"
    assert not {"user.ifa", "user.exchange_uid", "user.buyer_uid"} & set(got)
    assert got["ortb.channel"] == "app"  # contextual signals still come


@pytest.mark.parametrize(
    "device",
    [{"lmt": 1}, {"ifa": "00000000-0000-0000-0000-000000000000"}, {"ifa": ""}],
    ids=["limit ad tracking", "zeros", "empty"],
)
async def test_no_advertising_id_when_the_device_refuses_tracking(device: dict[str, Any]) -> None:
    body = iphone_in_germany()
    body["device"].update(device)
    got = await _signals("consent", OrtbUserProvider, body=body, config=CONSENT)
    assert "user.ifa" not in got and got["user.exchange_uid"]


# -- device, geo and request: the bid request first, the headers fill in ----------------------


async def test_device_geo_and_request_come_from_the_bid_request() -> None:
    got = await _signals(
        "device", "geo", "request", body=iphone_in_germany(), headers=CHROME_HEADERS
    )
    assert (got["device.type"], got["device.os"], got["device.browser"]) == (
        "mobile",
        "ios",
        "safari",
    )
    assert (got["geo.country"], got["geo.region"], got["geo.city"]) == ("DE", "BE", "Berlin")
    assert got["request.language"] == "en"
    # the bid request has no site.ref: the header fills it
    assert got["request.referrer"] == "news.example"


async def test_the_headers_fill_what_the_bid_request_lacks() -> None:
    body = copy.deepcopy(published("openrtb2.6_01"))  # no device at all
    body["site"]["ref"] = "https://www.search.example/?q=shoes"
    got = await _signals("device", "geo", "request", body=body, headers=CHROME_HEADERS)
    assert (got["device.type"], got["device.os"], got["device.browser"]) == (
        "desktop",
        "windows",
        "chrome",
    )
    assert got["geo.country"] == "FR"
    assert got["request.language"] == "fr"
    assert got["request.referrer"] == "search.example"


async def test_before_this_an_iphone_in_germany_was_a_desktop_nowhere() -> None:
    # the exchange's own request, as the proxy saw it before bid requests were read
    got = await _signals("device", "geo", body=b"", headers={"User-Agent": EXCHANGE_AGENT})
    assert got.get("device.type") == "desktop" and "geo.country" not in got
    got = await _signals("device", "geo", body=iphone_in_germany())
    assert got["device.type"] == "mobile" and got["geo.country"] == "DE"


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        ({"devicetype": 5, "ua": "Mozilla/5.0 (Linux; Android 13; Pixel 7) Mobile"}, "tablet"),
        ({"devicetype": 3, "ua": "Roku/DVP-12.5 (12.5.0.4178)"}, "ctv"),
        ({"devicetype": 7}, "ctv"),
        ({"devicetype": 2}, "desktop"),
        ({"devicetype": 4, "os": "Android"}, "mobile"),
        ({"devicetype": 1}, "mobile"),
        ({"devicetype": 4, "ua": "Mozilla/5.0 (compatible; Googlebot/2.1)"}, "bot"),
    ],
    ids=str,
)
async def test_the_declared_device_type_wins_but_a_crawler_stays_a_bot(
    device: dict[str, Any], expected: str
) -> None:
    got = await _signals("device", body={"imp": [{"id": "1"}], "device": device})
    assert got["device.type"] == expected


async def test_declared_os_and_the_structured_user_agent() -> None:
    body = {
        "imp": [{"id": "1"}],
        "device": {
            "ua": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 Chrome/124",
            "sua": {
                "browsers": [
                    {"brand": "Not-A.Brand", "version": ["99"]},
                    {"brand": "Microsoft Edge", "version": ["124", "0"]},
                ],
                "platform": {"brand": "Windows", "version": ["15"]},
                "mobile": 0,
            },
        },
    }
    got = await _signals("device", body=body)
    assert (got["device.os"], got["device.browser"], got["device.type"]) == (
        "windows",
        "edge",
        "desktop",
    )
    body["device"]["os"] = "Android"
    assert (await _signals("device", body=body))["device.os"] == "android"
    video = await _signals("device", body=published("openrtb2.6_04"))  # os "OS X", Firefox 3.6
    assert (video["device.os"], video["device.browser"]) == ("macos", "firefox")


@pytest.mark.parametrize(
    ("geo", "expected"),
    [
        ({"country": "USA", "region": "CA", "city": "Los Angeles"}, ("US", "CA", "Los Angeles")),
        ({"country": "gbr", "region": "GB-LND"}, ("GB", "LND", None)),
        ({"country": "DE"}, ("DE", None, None)),
        ({"country": "XYZ", "region": "x" * 40, "city": "y" * 500}, (None, None, None)),
    ],
    ids=str,
)
async def test_geo_codes_from_the_bid_request(
    geo: dict[str, Any], expected: tuple[str | None, ...]
) -> None:
    got = await _signals("geo", body={"imp": [{"id": "1"}], "device": {"geo": geo}}, headers={})
    assert (got.get("geo.country"), got.get("geo.region"), got.get("geo.city")) == expected


async def test_coordinates_out_of_range_are_left_out() -> None:
    geo = {"lat": 91.0, "lon": 13.4}
    got = await _signals("geo", body={"imp": [{"id": "1"}], "device": {"geo": geo}})
    assert "geo.latitude" not in got and got["geo.longitude"] == 13.4


async def test_the_database_looks_up_the_users_address_not_the_exchanges(
    tmp_path: Path,
) -> None:
    db = write_mmdb(
        tmp_path / "city.mmdb",
        {
            "81.2.69.0/24": city_record("GB", "London", "Europe/London", "ENG"),
            "2.125.160.0/20": city_record("DE", "Berlin", "Europe/Berlin", "BE"),
        },
    )
    exchange = "81.2.69.160"  # the exchange's server, in London
    user = {"imp": [{"id": "1"}], "device": {"ip": "2.125.161.7"}}  # the user, in Berlin
    declared = {"imp": [{"id": "1"}], "device": {"ip": "2.125.161.7", "geo": {"country": "AUT"}}}
    config = {"geo": {"database": str(db), "trust_cdn_headers": False}}
    async with provider_set("geo", config=config) as providers:
        plain = await gather(providers, make_request(client_ip=exchange))
        bid = await gather(providers, make_request(client_ip=exchange, body=user))
        both = await gather(providers, make_request(client_ip=exchange, body=declared))
    assert plain.signals["geo.country"] == "GB"
    assert (bid.signals["geo.country"], bid.signals["geo.timezone"]) == ("DE", "Europe/Berlin")
    # the bid request's own geo wins field by field; the database fills the rest
    assert (both.signals["geo.country"], both.signals["geo.city"]) == ("AT", "Berlin")


async def test_a_bid_request_device_without_anything_known_adds_nothing() -> None:
    provider = DeviceProvider(None)
    request = make_request(body={"imp": [{"id": "1"}], "device": {"ip": "192.0.2.1"}})
    assert await provider.fetch(request) == {}


async def test_requests_without_a_bid_request_do_not_run_its_providers() -> None:
    config = {"consent": {"default_level": "personal"}}
    async with provider_set("consent", OrtbProvider, OrtbUserProvider, config=config) as loaded:
        for request in (
            make_request("/c/shoes", user_id="u1"),
            make_request("/api/cart", body={"items": ["sku-1"]}, user_id="u1"),
            make_request(
                "/bid", method="GET", body=iphone_in_germany(gdpr=0, consent=None), user_id="u1"
            ),
        ):
            got = await gather(loaded, request)
            assert got.personal and set(got.signals) == {"consent.level", "consent.reason"}
        ortb, ortb_user = loaded.by_name["ortb"].metrics, loaded.by_name["ortb_user"].metrics
        assert ortb.fetches == ortb_user.fetches == 0
        assert ortb_user.misses["no_consent"] == 0  # not skipped for consent: not run at all
        # a bid request runs them; so does a body that names imp but cannot be read
        await gather(
            loaded, make_request(body=iphone_in_germany(gdpr=0, consent=None), user_id="u1")
        )
        await gather(loaded, make_request(body=b'{"imp": [', user_id="u1"))
        assert (ortb.fetches, ortb_user.fetches) == (2, 2)
        assert ortb.fallbacks == {"bid_request_malformed": 1}


def test_needs_bid_request_must_be_a_bool() -> None:
    from slotwise.plugins.registry import check_provider_class

    class Sloppy(OrtbProvider):
        name = "sloppy"
        needs_bid_request = "yes"  # type: ignore[assignment]

    problems = check_provider_class(Sloppy, "sloppy")
    assert [p.message for p in problems] == ["needs_bid_request must be True or False (got 'yes')"]
