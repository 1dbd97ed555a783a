"""GPP: published headers, sections and US Privacy strings decode to their published values."""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slotwise.plugins.builtin import gpp
from slotwise.plugins.builtin.tcf import decode as decode_tc
from tests.plugins.gpp_encoder import header

DATA = json.loads((Path(__file__).parent / "data" / "gpp.json").read_text())
BASE64URL = string.ascii_letters + string.digits + "-_"


@pytest.mark.parametrize("case", DATA["headers"], ids=lambda c: c["name"])
def test_published_headers_name_their_sections(case: dict[str, Any]) -> None:
    decoded = gpp.decode(case["gpp"])
    assert decoded.version == 1
    assert list(decoded.section_ids) == case["sections"]
    assert list(decoded.sections) == case["sections"]
    assert "~".join([case["gpp"].split("~")[0], *decoded.sections.values()]) == case["gpp"]


def test_the_test_encoder_writes_the_published_headers() -> None:
    # the specification's header examples 1 and 2, without the padding character
    assert header(2) == "DBABM" and header(2, 6) == "DBACNY"
    assert gpp.decode(header(6, 7) + "~1YNN~x").section_ids == (6, 7)


def test_the_tcf_section_is_a_tc_string() -> None:
    case = DATA["tcf_section"]
    section = gpp.decode(case["gpp"]).sections[gpp.TCF_EU_V2]
    tc = decode_tc(section)
    for field in (
        "cmp_id",
        "cmp_version",
        "consent_screen",
        "consent_language",
        "vendor_list_version",
        "policy_version",
        "is_service_specific",
        "purpose_one_treatment",
        "publisher_country",
        "created",
        "last_updated",
    ):
        assert getattr(tc, field) == case[field], field


@pytest.mark.parametrize("case", DATA["usnat"], ids=lambda c: c["name"])
def test_published_us_national_sections_decode_field_by_field(case: dict[str, Any]) -> None:
    decoded = gpp.decode_us_national(case["section"])
    for field, expected in case.items():
        if field in ("name", "section"):
            continue
        value = getattr(decoded, field)
        assert (list(value) if isinstance(value, tuple) else value) == expected, field
    assert decoded.opted_out == (case["sale_opt_out"] == 1)
    assert decoded.known_child_without_consent == (1 in case["known_child_sensitive_data_consents"])


def test_a_section_without_opt_outs_in_a_full_string() -> None:
    every = next(c for c in DATA["headers"] if len(c["sections"]) > 10)["gpp"]
    usnat = gpp.decode_us_national(gpp.decode(every).sections[gpp.US_NATIONAL])
    assert not usnat.opted_out and not usnat.known_child_without_consent
    assert usnat.gpc is False


@pytest.mark.parametrize("case", DATA["us_privacy"], ids=lambda c: c["text"])
def test_us_privacy_strings(case: dict[str, Any]) -> None:
    decoded = gpp.decode_us_privacy(case["text"])
    assert (decoded.notice, decoded.opt_out_sale, decoded.lspa_covered) == (
        case["notice"],
        case["opt_out_sale"],
        case["lspa_covered"],
    )
    assert decoded.opted_out is case["opted_out"]


@pytest.mark.parametrize(
    ("kind", "text"),
    [(kind, text) for kind, cases in DATA["malformed"].items() for text in cases.values()],
)
def test_malformed_strings_raise_gpp_error(kind: str, text: str) -> None:
    decoder = {
        "gpp": gpp.decode,
        "usnat": gpp.decode_us_national,
        "us_privacy": gpp.decode_us_privacy,
    }[kind]
    with pytest.raises(gpp.GPPError):
        decoder(text)


def test_a_hostile_section_range_is_refused_not_expanded() -> None:
    # header: type 3, version 1, one entry: a group from 1 of length F(30) ~ 1.3 million
    bits = "000011" + "000001" + "000000000001" + "1" + "11" + "0" * 28 + "111"
    bits += "0" * (-len(bits) % 6)
    header = "".join(gpp._ALPHABET[int(bits[i : i + 6], 2)] for i in range(0, len(bits), 6))
    with pytest.raises(gpp.GPPError, match="not a real GPP header"):
        gpp.decode(header)


def test_an_overlong_string_is_refused() -> None:
    with pytest.raises(gpp.GPPError):
        gpp.decode("DBABTA~" + "A" * gpp.MAX_LENGTH)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=BASE64URL + "~.", max_size=120))
def test_any_text_decodes_or_raises_gpp_error(text: str) -> None:
    for decoder in (gpp.decode, gpp.decode_us_national, gpp.decode_us_privacy):
        try:
            decoder("D" + text)
        except gpp.GPPError:
            pass
