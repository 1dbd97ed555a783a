"""Every published IAB example through the adapters: slots found, rewrites stay valid."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from slotwise.dsl.location import parse_location
from slotwise.proxy.adapters import parse_response
from slotwise.proxy.adapters.native import NativeMarkup
from slotwise.proxy.adapters.openrtb import BidResponseDocument
from slotwise.proxy.adapters.vast import VastDocument
from slotwise.proxy.tracking import ClickSigner
from tests.conftest import TEST_DATA

IAB = TEST_DATA / "iab"
NATIVE = sorted((IAB / "native-1.2").glob("*response*.json")) + [
    IAB / "native-1.2" / "native1.2_6.4_assets_url_response.normalized.json"
]
OPENRTB_RESPONSES = sorted((IAB / "openrtb-2.6").glob("openrtb2.6_0[6-9]_*.json"))
VAST = sorted((IAB / "vast").glob("*/*.xml"))
TRACKERS = ClickSigner(b"k" * 32, "https://proxy.example").trackers("dec-1")
JSON_TYPE = b"application/json"


def _native_request_for(response: Path) -> bytes:
    request = response.with_name(response.name.replace("response", "request"))
    return request.read_bytes() if request.exists() else b""


def test_examples_are_present() -> None:
    assert len(set(NATIVE)) >= 4 and len(OPENRTB_RESPONSES) == 4 and len(VAST) == 34


@pytest.mark.parametrize("path", sorted(set(NATIVE)), ids=lambda p: p.name)
def test_native_markup_rewrites_keep_native_structure(path: Path) -> None:
    root = json.loads(path.read_bytes())
    bid_response = {
        "id": "1",
        "seatbid": [
            {
                "bid": [
                    {"id": "b", "impid": "1", "price": 1.0, "cid": "cmp-n", "adm": json.dumps(root)}
                ]
            }
        ],
    }
    doc = parse_response(JSON_TYPE, json.dumps(bid_response).encode(), _native_request_for(path))
    assert isinstance(doc, BidResponseDocument)
    (unit,) = doc.units
    assert unit.signals["ad.campaign_id"] == "cmp-n" and unit.native is not None
    title = parse_location("native:title")
    assert unit.read(title) is not None
    assert unit.write(title, "Personalised title")
    found_main = unit.write(parse_location("native:img:main"), "https://cdn.example/main.jpg")
    # 6.4 declares image types in the response; 6.1-6.3 get them from their requests
    assert found_main
    unit.track(TRACKERS)
    out = json.loads(doc.serialize())
    adm = out["seatbid"][0]["bid"][0]["adm"]
    assert isinstance(adm, str)
    native = json.loads(adm)
    inner = native.get("native", native)
    assert set(inner) >= set(root.get("native", root))  # nothing dropped
    assert any(a.get("title", {}).get("text") == "Personalised title" for a in inner["assets"])
    assert any(
        a.get("img", {}).get("url") == "https://cdn.example/main.jpg" for a in inner["assets"]
    )
    trackers = [t.get("url") for t in inner.get("eventtrackers", [])] + inner.get("imptrackers", [])
    assert TRACKERS.impression in trackers
    if "link" in inner:
        assert TRACKERS.click in inner["link"]["clicktrackers"]


def test_native_adm_as_object_stays_an_object() -> None:
    path = IAB / "native-1.2" / "native1.2_6.4_assets_url_response.normalized.json"
    adm = json.loads(path.read_bytes())
    body = json.dumps({"id": "1", "seatbid": [{"bid": [{"id": "b", "impid": "1", "adm": adm}]}]})
    doc = parse_response(JSON_TYPE, body.encode())
    assert isinstance(doc, BidResponseDocument)
    assert doc.units[0].write(parse_location("native:data:desc"), "New description")
    out = json.loads(doc.serialize())["seatbid"][0]["bid"][0]["adm"]
    assert isinstance(out, dict)
    assert {"type": 2, "len": 63, "value": "New description"} in [
        a.get("data") for a in out["assets"]
    ]


@pytest.mark.parametrize("path", OPENRTB_RESPONSES, ids=lambda p: p.name)
def test_openrtb_examples_parse_and_roundtrip(path: Path) -> None:
    original = json.loads(path.read_bytes())
    doc = parse_response(JSON_TYPE, path.read_bytes())
    assert isinstance(doc, BidResponseDocument)
    assert len(doc.units) == sum(len(s["bid"]) for s in original["seatbid"])
    assert json.loads(doc.serialize()) == original  # untouched when nothing was written


def test_openrtb_vast_inline_adm_is_rewritten_well_formed() -> None:
    path = (
        IAB / "openrtb-2.6" / "openrtb2.6_07_6_3_2_Example_2_VAST_XML_Document_Returned_Inline.json"
    )
    doc = parse_response(JSON_TYPE, path.read_bytes())
    assert isinstance(doc, BidResponseDocument)
    (unit,) = doc.units
    assert unit.read(parse_location("vast:AdTitle")) == "Sample VAST"
    assert unit.write(parse_location("vast:AdTitle"), "Spring <sale> & more ]]> now")
    assert unit.write(parse_location("vast:MediaFile"), "https://cdn.example/v.mp4")
    unit.track(TRACKERS)
    adm = json.loads(doc.serialize())["seatbid"][0]["bid"][0]["adm"]
    root = ET.fromstring(adm)
    assert root.findtext("Ad/InLine/AdTitle") == "Spring <sale> & more ]]> now"
    impressions = [e.text.strip() for e in root.iter("Impression") if e.text]
    assert impressions == ["http://sample.com", TRACKERS.impression]
    clicks = [e.text for e in root.iter("ClickTracking")]
    assert clicks == [TRACKERS.click]


def test_openrtb_elided_native_markup_has_no_slots() -> None:
    path = IAB / "openrtb-2.6" / "openrtb2.6_09_6_3_4_Example_4_Native_Markup_Returned_Inline.json"
    doc = parse_response(JSON_TYPE, path.read_bytes())
    assert isinstance(doc, BidResponseDocument)
    assert doc.units[0].read(parse_location("native:title")) is None


@pytest.mark.parametrize("path", VAST, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_vast_examples_rewrite_well_formed(path: Path) -> None:
    data = path.read_bytes()
    assert VastDocument(data).serialize() == data  # no edits: byte for byte
    doc = parse_response(b"application/xml", data)
    assert isinstance(doc, VastDocument) and doc.units
    written = 0
    for unit in doc.units:
        for element in ("AdTitle", "MediaFile", "ClickThrough", "Companion"):
            location = parse_location(f"vast:{element}")
            if unit.read(location) is not None:
                assert unit.write(location, f"https://cdn.example/{element}?a=1&b=2")
                written += 1
        unit.track(TRACKERS)
    out = doc.serialize()
    root = ET.fromstring(out)  # well-formed
    assert root.tag in ("{http://www.iab.com/VAST}VAST", "VAST")
    original = ET.fromstring(data)
    assert root.attrib == original.attrib
    if written:
        assert b"https://cdn.example/" in out
    assert out.count(TRACKERS.impression.encode()) == len(doc.units)


def test_native_looks_native() -> None:
    assert NativeMarkup.looks_native({"native": {"assets": []}})
    assert not NativeMarkup.looks_native({"banner": 1})


@pytest.mark.parametrize(
    "body",
    [b"<VAST><Ad>", b"<!DOCTYPE x [<!ENTITY a 'b'>]><VAST/>", b"<html/>", b"\xff\xfe"],
)
def test_bad_xml_is_an_adapter_error(body: bytes) -> None:
    from slotwise.proxy.adapters import AdapterError

    with pytest.raises(AdapterError):
        parse_response(b"text/xml", body)


def test_native_video_asset_vasttag() -> None:
    path = IAB / "native-1.2" / "native1.2_6.2_content_video_bid_response.normalized.json"
    adm = path.read_text()
    body = json.dumps({"id": "1", "seatbid": [{"bid": [{"id": "b", "impid": "1", "adm": adm}]}]})
    doc = parse_response(JSON_TYPE, body.encode())
    assert isinstance(doc, BidResponseDocument)
    video = parse_location("native:video")
    assert doc.units[0].read(video) == "<VAST version='2.0'></VAST>"
    assert doc.units[0].write(video, "<VAST version='4.1'/>")
    out = json.loads(json.loads(doc.serialize())["seatbid"][0]["bid"][0]["adm"])
    assert out["native"]["assets"][0]["video"]["vasttag"] == "<VAST version='4.1'/>"
