"""The bid request in a POST body: decoded once, leniently, only when it is one; ids stripped
from the view without identifiers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slotwise.plugins.bid_request import BidRequest, decode
from slotwise.plugins.request import NO_BODY, RequestBody, RequestInfo
from slotwise.testing.provider import make_request
from tests.plugins.openrtb_requests import (
    PUBLISHED_REQUESTS,
    PUBLISHED_RESPONSES,
    iphone_in_germany,
    published,
)


@pytest.mark.parametrize("path", PUBLISHED_REQUESTS, ids=lambda p: p.name[:20])
def test_every_published_request_decodes_cleanly(path: Path) -> None:
    raw = json.loads(path.read_bytes())
    decoded = decode(path.read_bytes())
    assert decoded.problem is None
    request = decoded.bid_request
    assert request is not None
    assert [imp.id for imp in request.imp] == [imp["id"] for imp in raw["imp"]]
    assert (request.site is None) == ("site" not in raw)
    assert (request.app is None) == ("app" not in raw)
    if "device" in raw:
        assert request.device is not None and request.device.ua == raw["device"]["ua"]
    if "user" in raw:
        assert request.user is not None and request.user.id == raw["user"]["id"]


@pytest.mark.parametrize("path", PUBLISHED_RESPONSES, ids=lambda p: p.name[:20])
def test_published_responses_are_not_bid_requests(path: Path) -> None:
    assert decode(path.read_bytes()).bid_request is None


def test_the_published_fields_slotwise_reads() -> None:
    video = decode(json.dumps(published("openrtb2.6_04")).encode()).bid_request
    assert video is not None and video.imp[0].video is not None
    assert (video.imp[0].video.w, video.imp[0].video.h) == (640, 480)
    assert video.user is not None and video.user.buyeruid == "545678765467876567898765678987654"
    assert video.site is not None and video.site.publisher is not None
    assert video.site.publisher.id == "pub12345"
    mobile = decode(json.dumps(published("openrtb2.6_03")).encode()).bid_request
    assert mobile is not None and mobile.device is not None
    assert (mobile.device.os, mobile.device.devicetype, mobile.device.language) == ("iOS", 1, "en")
    assert mobile.imp[0].tagid == "agltb3B1Yi1pbmNyDQsSBFNpdGUY7fD0FAw"


def test_privacy_fields_are_read_where_2_6_and_2_5_put_them() -> None:
    new = _request(
        {"regs": {"gdpr": 1, "gpp": "DBABTA~1YNN", "gpp_sid": [6], "us_privacy": "1YNN"}}
    )
    old = _request(
        {
            "regs": {
                "ext": {"gdpr": 1, "gpp": "DBABTA~1YNN", "gpp_sid": [6], "us_privacy": "1YNN"}
            },
            "user": {"ext": {"consent": "CO..."}},
        }
    )
    for request in (new, old):
        assert (request.gdpr, request.gpp, request.gpp_sid, request.us_privacy) == (
            1,
            "DBABTA~1YNN",
            (6,),
            "1YNN",
        )
    assert old.tc_string == "CO..." and new.tc_string is None
    assert _request({"regs": {"coppa": 1}}).coppa and not new.coppa
    silent = _request({})
    assert (silent.gdpr, silent.tc_string, silent.gpp, silent.gpp_sid, silent.us_privacy) == (
        (None,) * 5
    )


def test_numbers_sent_as_strings_are_taken() -> None:
    request = _request({"regs": {"gdpr": "1"}, "imp": [{"id": "1", "banner": {"w": "300"}}]})
    assert request.gdpr == 1
    assert request.imp[0].banner is not None and request.imp[0].banner.w == 300


def test_a_wrongly_typed_field_costs_that_field_only() -> None:
    body = {
        "imp": [{"id": "1", "banner": {"w": 300, "h": "tall"}}, "not an imp"],
        "device": {"ua": "Mozilla/5.0", "geo": {"country": "DEU", "lat": "north"}, "lmt": []},
        "regs": {"gdpr": 1, "gpp_sid": "2"},
    }
    decoded = decode(json.dumps(body).encode())
    assert decoded.problem == "invalid"
    request = decoded.bid_request
    assert request is not None and len(request.imp) == 1
    assert request.imp[0].banner is not None
    assert (request.imp[0].banner.w, request.imp[0].banner.h) == (300, None)
    assert request.device is not None and request.device.geo is not None
    assert (request.device.ua, request.device.geo.country, request.device.geo.lat) == (
        "Mozilla/5.0",
        "DEU",
        None,
    )
    assert request.device.lmt is None
    assert request.gdpr == 1 and request.gpp_sid is None


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"imp=1&site=2",
        b'["imp"]',
        b'{"site": {"domain": "a.example"}}',
        b'{"nested": {"imp": [{"id": "1"}]}}',
        b'{"imp": []}',
        b'{"imp": "1"}',
        b'{"imp": [1, 2]}',
    ],
)
def test_bodies_that_are_not_bid_requests(body: bytes) -> None:
    decoded = decode(body)
    assert decoded.bid_request is None and decoded.problem is None


def test_a_body_naming_imp_that_is_not_json_is_malformed() -> None:
    assert decode(b'{"imp": [{"id": "1"}').problem == "malformed"
    # without "imp" in it, nothing is parsed, so nothing can be found wrong
    assert decode(b'{"id": "1"').problem is None


_KEYS = st.sampled_from(
    ["imp", "id", "w", "h", "banner", "device", "geo", "regs", "gdpr", "gpp_sid"]
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_KEYS, children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(_JSON)
def test_any_json_decodes_or_is_not_a_bid_request(value: Any) -> None:
    body = msgspec.json.encode({"imp": [value], "device": value, "regs": value})
    decoded = decode(body)
    assert decoded.bid_request is None or isinstance(decoded.bid_request, BidRequest)


# -- RequestInfo: when and how often the body is decoded --------------------------------------


def test_a_get_or_a_bodyless_request_has_no_bid_request() -> None:
    body = json.dumps(iphone_in_germany()).encode()
    assert make_request(method="GET", body=body).bid_request is None
    assert make_request("/").body is NO_BODY
    assert make_request("/").bid_request is None
    assert make_request(method="POST", body=body).bid_request is not None


def test_the_body_is_decoded_once_for_every_view_of_the_request() -> None:
    request = make_request(body=iphone_in_germany(), user_id="u1")
    first = request.bid_request
    assert first is not None
    assert request.with_signals({"geo.country": "DE"}).bid_request is first
    assert request.with_user_id("u2").bid_request is first
    anonymous = request.without_identifiers()
    assert anonymous.bid_request is anonymous.bid_request  # its own view, decoded once too


def test_the_view_without_identifiers_has_no_ids_and_no_raw_body() -> None:
    request = make_request(body=iphone_in_germany(), user_id="u1")
    view = request.without_identifiers()
    assert view.user_id is None and view.body.raw == b""
    seen = view.bid_request
    assert seen is not None and seen.device is not None and seen.user is not None
    assert seen.device.ifa is None and seen.user.id is None and seen.user.buyeruid is None
    # what is not an identifier stays: the consent string, the device, the address
    assert seen.user.consent is not None and seen.device.ua is not None
    full = request.bid_request
    assert full is not None and full.device is not None and full.device.ifa is not None


def test_a_request_without_anything_to_strip_is_its_own_view() -> None:
    request = make_request("/", client_ip="198.51.100.1")
    assert request.without_identifiers() is request


def test_from_scope_takes_the_body() -> None:
    scope = {"method": "POST", "path": "/bid", "headers": [(b"content-type", b"application/json")]}
    body = json.dumps(iphone_in_germany()).encode()
    request = RequestInfo.from_scope(scope, body=body)
    assert request.body.raw == body and request.bid_request is not None
    assert RequestInfo.from_scope(scope).body is NO_BODY


def test_problem_of_a_body() -> None:
    assert RequestBody(b'{"imp": [').problem == "malformed"
    assert RequestBody(b'{"imp": [{"banner": {"w": "x"}}]}').problem == "invalid"
    assert RequestBody(b'{"imp": [').without_identifiers().problem == "malformed"
    assert RequestBody(b'{"imp": [', post=False).problem is None


def _request(fields: dict[str, Any]) -> BidRequest:
    body = {"imp": [{"id": "1"}], **fields}
    decoded = decode(json.dumps(body).encode())
    assert decoded.bid_request is not None and decoded.problem is None, decoded
    return decoded.bid_request
