"""Consent: real TCF v2 strings (decoded field by field), expiry, vendor, purposes, GPC."""

from __future__ import annotations

import base64
import json
import string
import time
from collections.abc import Set
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slotwise.plugins.builtin.configs import ConsentConfig
from slotwise.plugins.builtin.consent import ConsentProvider
from slotwise.plugins.builtin.tcf import TCFError, decode
from slotwise.plugins.gather import gather
from slotwise.testing.provider import make_request, provider_set
from tests.plugins.tcf_encoder import encode_core

DATA = json.loads((Path(__file__).parent / "data" / "tcf_v2.json").read_text())
CONSENTING = DATA["consenting"]
DAY = 86_400.0
FRESH = CONSENTING["last_updated"] + 10 * DAY
BASE64URL = string.ascii_letters + string.digits + "-_"


def _provider(**config: Any) -> ConsentProvider:
    return ConsentProvider(ConsentConfig(**config))


def _decide(provider: ConsentProvider, **request: Any) -> tuple[str, str]:
    request.setdefault("received_at", FRESH)
    return provider.decide(make_request(**request))


@pytest.mark.parametrize("case", DATA["valid"], ids=lambda c: c["name"])
def test_real_strings_decode_field_by_field(case: dict[str, Any]) -> None:
    tc = decode(case["tc"])
    assert tc.version == 2
    for field, expected in case.items():
        if field in ("name", "tc"):
            continue
        actual = getattr(tc, field)
        if isinstance(actual, Set):
            actual = sorted(actual)
        assert actual == expected, field


@pytest.mark.parametrize("case", DATA["restrictions"], ids=["restriction-1", "restriction-2"])
def test_publisher_restrictions(case: dict[str, Any]) -> None:
    tc = decode(case["tc"])
    for purpose, kind, vendor in case["present"]:
        assert tc.restricted(vendor, purpose, kind), (purpose, kind, vendor)
    for purpose, kind, vendor in case["absent"]:
        assert not tc.restricted(vendor, purpose, kind), (purpose, kind, vendor)


@pytest.mark.parametrize("name", sorted(DATA["malformed"]))
def test_malformed_strings_raise(name: str) -> None:
    with pytest.raises(TCFError):
        decode(DATA["malformed"][name])


def test_a_later_segment_does_not_disturb_the_core() -> None:
    core = DATA["valid"][0]["tc"]
    assert decode(core + ".argAC0gAAAAAAAAAAAA") == decode(core)


def test_valid_string_with_our_vendor_and_purposes_is_personal() -> None:
    consent = _provider(vendor_id=CONSENTING["vendor"])
    assert _decide(consent, cookies={"euconsent-v2": CONSENTING["tc"]}) == ("personal", "granted")
    # Ad requests carry the string as the OpenRTB/TCF query parameter instead of a cookie.
    assert _decide(consent, query=f"gdpr=1&gdpr_consent={CONSENTING['tc']}") == (
        "personal",
        "granted",
    )


def test_expired_string_is_contextual() -> None:
    consent = _provider(vendor_id=CONSENTING["vendor"], max_age_days=390)
    late = CONSENTING["last_updated"] + 391 * DAY
    assert _decide(consent, cookies={"euconsent-v2": CONSENTING["tc"]}, received_at=late) == (
        "contextual",
        "tcf_expired",
    )
    stricter = _provider(vendor_id=CONSENTING["vendor"], max_age_days=5)
    assert _decide(stricter, cookies={"euconsent-v2": CONSENTING["tc"]})[1] == "tcf_expired"
    future = CONSENTING["last_updated"] - DAY
    assert _decide(consent, cookies={"euconsent-v2": CONSENTING["tc"]}, received_at=future) == (
        "contextual",
        "tcf_expired",
    )


def test_vendor_denied_is_contextual() -> None:
    consent = _provider(vendor_id=1)
    assert _decide(consent, cookies={"euconsent-v2": CONSENTING["tc"]}) == (
        "contextual",
        "tcf_vendor_denied",
    )


def test_missing_purpose_is_contextual() -> None:
    bitfield = DATA["valid"][0]  # vendor 2 consented, purposes 1, 3, 9, 10 (no 4)
    consent = _provider(vendor_id=2)
    at = bitfield["last_updated"] + DAY
    request = {"cookies": {"euconsent-v2": bitfield["tc"]}, "received_at": at}
    assert _decide(consent, **request) == ("contextual", "tcf_purpose_denied")
    assert _decide(_provider(vendor_id=2, required_purposes=[1, 3]), **request) == (
        "personal",
        "granted",
    )


@pytest.mark.parametrize("name", sorted(DATA["malformed"]))
def test_malformed_string_is_contextual(name: str) -> None:
    consent = _provider(vendor_id=CONSENTING["vendor"], default_level="personal")
    assert _decide(consent, cookies={"euconsent-v2": DATA["malformed"][name]}) == (
        "contextual",
        "tcf_malformed",
    )


def test_gpc_wins_over_a_valid_string() -> None:
    consent = _provider(vendor_id=CONSENTING["vendor"])
    request = {"cookies": {"euconsent-v2": CONSENTING["tc"]}, "headers": {"Sec-GPC": "1"}}
    assert _decide(consent, **request) == ("contextual", "gpc")
    assert _decide(_provider(vendor_id=CONSENTING["vendor"], honor_gpc=False), **request) == (
        "personal",
        "granted",
    )


def test_site_cookie() -> None:
    consent = _provider(vendor_id=CONSENTING["vendor"])
    assert _decide(consent, cookies={"sw_consent": "granted"}) == ("personal", "granted")
    assert _decide(consent, cookies={"sw_consent": "denied"}) == ("contextual", "site_denied")
    assert _decide(consent, cookies={"sw_consent": "maybe"}) == ("contextual", "site_unreadable")
    both = {"sw_consent": "denied", "euconsent-v2": CONSENTING["tc"]}
    assert _decide(consent, cookies=both) == ("contextual", "site_denied")
    granted_but_tcf_denies = {"sw_consent": "granted", "euconsent-v2": CONSENTING["tc"]}
    assert _decide(_provider(vendor_id=1), cookies=granted_but_tcf_denies) == (
        "contextual",
        "tcf_vendor_denied",
    )


def test_defaults_and_missing_records() -> None:
    consent = _provider(vendor_id=CONSENTING["vendor"])
    assert _decide(consent) == ("contextual", "default")
    assert _decide(consent, query="gdpr=1") == ("contextual", "tcf_missing")
    assert _decide(_provider(default_level="personal")) == ("personal", "default")
    assert _decide(_provider(), cookies={"euconsent-v2": CONSENTING["tc"]}) == (
        "contextual",
        "tcf_no_vendor_configured",
    )


async def test_gather_obeys_the_decision() -> None:
    config = {"consent": {"vendor_id": CONSENTING["vendor"]}}
    async with provider_set("consent", "profile", "request", config=config) as providers:
        valid = make_request(
            cookies={"euconsent-v2": CONSENTING["tc"]}, user_id="u1", received_at=FRESH
        )
        got = await gather(providers, valid)
        assert got.personal and got.user_id == "u1" and "user.is_new" in got.signals
        gpc = make_request(
            cookies={"euconsent-v2": CONSENTING["tc"]},
            headers={"Sec-GPC": "1"},
            user_id="u1",
            received_at=FRESH,
        )
        got = await gather(providers, gpc)
        assert not got.personal and got.user_id is None
        assert not any(name.startswith(("user.", "cart.")) for name in got.signals)
        assert got.signals["consent.reason"] == "gpc"


def test_bad_consent_config_is_reported() -> None:
    from slotwise.plugins import registry
    from slotwise.plugins.errors import PluginError

    with pytest.raises(PluginError) as info:
        registry.load_providers({"consent": {"vendor_id": 0, "required_purposes": [1, 99]}})
    [problem] = info.value.problems
    assert problem.provider == "consent" and "vendor_id" in problem.message


def test_encoded_strings_round_trip_in_both_vendor_encodings() -> None:
    for range_encoding in (False, True):
        tc = encode_core(
            updated=FRESH, vendors=[3, 4, 5, 900], purposes=[1, 3, 4], range_encoding=range_encoding
        )
        decoded = decode(tc)
        assert set(decoded.vendor_consents) == {3, 4, 5, 900}
        assert decoded.purpose_consents == {1, 3, 4}
        assert decoded.last_updated == pytest.approx(FRESH)


def test_publisher_restriction_on_a_required_purpose_is_contextual() -> None:
    restricted = encode_core(
        updated=FRESH, vendors=[284], purposes=[1, 3, 4], restrictions=[(3, 0, [280, 284])]
    )
    consent = _provider(vendor_id=284)
    assert _decide(consent, cookies={"euconsent-v2": restricted}) == (
        "contextual",
        "tcf_restricted",
    )
    other_vendor = encode_core(
        updated=FRESH, vendors=[284], purposes=[1, 3, 4], restrictions=[(3, 0, [12])]
    )
    assert _decide(consent, cookies={"euconsent-v2": other_vendor}) == ("personal", "granted")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(BASE64URL), max_size=120))
def test_any_base64url_text_decodes_or_raises_tcf_error(text: str) -> None:
    try:
        decode("C" + text)
    except TCFError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=80))
def test_any_bytes_decode_or_raise_tcf_error(data: bytes) -> None:
    try:
        decode(base64.urlsafe_b64encode(data).decode().rstrip("="))
    except TCFError:
        pass


def test_a_hostile_range_section_is_not_expanded() -> None:
    # 1400 ranges of every vendor id (about the most 8 KiB holds): 92 million ids expanded.
    # five different strings (no cache answers), the fastest timed: a stall of a loaded machine
    # slows one decode, expanding would slow every one
    timings = []
    for n in range(5):
        hostile = _hostile_string([(1, 65535 - n)] + [(1, 65535)] * 1399)
        started = time.perf_counter()
        decoded = decode(hostile)
        assert 65535 in decoded.vendor_consents and 0 not in decoded.vendor_consents
        timings.append(time.perf_counter() - started)
    assert min(timings) < 0.5, timings


def _hostile_string(runs: list[tuple[int, int]]) -> str:
    from tests.plugins.tcf_encoder import _Writer

    w = _Writer()
    w.uint(2, 6)
    w.uint(round(FRESH * 10), 36)
    w.uint(round(FRESH * 10), 36)
    w.uint(7, 12)
    w.uint(1, 12)
    w.uint(1, 6)
    w.letters("EN")
    w.uint(1, 12)
    w.uint(4, 6)
    w.uint(0, 2)
    w.uint(0, 12 + 24 + 24 + 1)
    w.letters("DE")
    w.uint(65535, 16)
    w.flag(True)
    w.uint(len(runs), 12)
    for start, end in runs:
        w.flag(True)
        w.uint(start, 16)
        w.uint(end, 16)
    w.uint(0, 16)
    w.flag(False)
    w.uint(0, 12)
    return w.encoded()
