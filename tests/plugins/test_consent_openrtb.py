"""Consent of OpenRTB traffic comes from the bid request: regs, user.consent, GPP, US Privacy.

Issue 15's acceptance: an OpenRTB bid request with an iPhone UA, DEU geo and a TCF string
granting consent yields those signals and personal consent; the same with GPP; each malformed
consent string is a counted contextual fallback, never an error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from slotwise.plugins.builtin.configs import ConsentConfig
from slotwise.plugins.builtin.consent import ConsentProvider
from slotwise.plugins.gather import Gathered, gather
from slotwise.plugins.loaded import ProviderSet
from slotwise.testing.provider import make_request, provider_set
from tests.plugins.gpp_encoder import header
from tests.plugins.openrtb_requests import (
    CONSENTING,
    EXCHANGE_AGENT,
    NOW,
    VENDOR,
    iphone_in_germany,
    published,
)

GPP = json.loads((Path(__file__).parent / "data" / "gpp.json").read_text())
TCF_ONLY_HEADER = "DBABMA"  # the specification's header example 1: one TCF EU v2 section
USNAT_OPTED_OUT = GPP["usnat"][0]["section"]
USNAT_NOTHING = GPP["usnat"][3]["section"]
USNAT_HEADER = header(7)
CONFIG = {"consent": {"vendor_id": VENDOR}}


async def _gather(providers: ProviderSet, body: Any, **request: Any) -> Gathered:
    request.setdefault("headers", {"User-Agent": EXCHANGE_AGENT})
    return await gather(
        providers,
        make_request("/openrtb2/auction", body=body, received_at=NOW, user_id="sw-7", **request),
    )


async def test_an_iphone_in_germany_with_tcf_consent_is_personal_with_its_signals() -> None:
    async with provider_set("builtins", config=CONFIG) as providers:
        got = await _gather(providers, iphone_in_germany())
    assert got.personal and got.user_id == "sw-7"
    signals = got.signals
    assert (signals["consent.level"], signals["consent.reason"]) == ("personal", "granted")
    assert (signals["device.type"], signals["device.os"], signals["device.browser"]) == (
        "mobile",
        "ios",
        "safari",
    )
    assert (signals["geo.country"], signals["geo.region"], signals["geo.city"]) == (
        "DE",
        "BE",
        "Berlin",
    )
    assert (signals["geo.latitude"], signals["geo.longitude"]) == (52.52, 13.405)
    assert signals["ortb.channel"] == "app" and signals["ortb.app_bundle"] == "12345"
    assert signals["user.ifa"] == "AA000DFE74168477C70D291f574D344790E0BB11"
    assert signals["request.language"] == "en"


async def test_the_same_with_gpp() -> None:
    body = iphone_in_germany(gpp=f"{TCF_ONLY_HEADER}~{CONSENTING['tc']}", gpp_sid=[2], consent=None)
    async with provider_set("builtins", config=CONFIG) as providers:
        got = await _gather(providers, body)
    assert got.personal
    assert got.signals["consent.reason"] == "granted"
    assert (got.signals["device.os"], got.signals["geo.country"]) == ("ios", "DE")
    assert providers.by_name["consent"].metrics.fallbacks == {}


async def test_gdpr_without_any_tc_string_is_contextual() -> None:
    async with provider_set("builtins", config=CONFIG) as providers:
        got = await _gather(providers, iphone_in_germany(gdpr=1, consent=None))
    assert not got.personal and got.user_id is None
    assert got.signals["consent.reason"] == "tcf_missing"
    # contextual signals stay; identifiers and the profile do not
    assert got.signals["device.os"] == "ios" and "user.ifa" not in got.signals
    assert got.signals["geo.country"] == "DE"


MALFORMED = {
    "tc string": ({"gdpr": 1, "consent": "COzSDo9OzSDo9B9AAAENAiCAAL"}, "tcf_malformed"),
    "tc string, 2.5 ext": (
        {"ext": {"gdpr": 1}, "consent": None, "user_ext": "not a tc string"},
        "tcf_malformed",
    ),
    "gpp header": ({"gpp": "DB*BMA~1YNN", "gpp_sid": [6], "consent": None}, "gpp_malformed"),
    "gpp tcf section": ({"gpp": "DBABMA~CPX", "gpp_sid": [2], "consent": None}, "tcf_malformed"),
    "gpp usnat section": (
        {"gpp": f"{USNAT_HEADER}~BVVV*kkkkpFY", "consent": None},
        "gpp_malformed",
    ),
    "gpp us privacy section": ({"gpp": "DBABTA~1XYZ", "consent": None}, "gpp_malformed"),
    "gpp section in force but absent": (
        {"gpp": "DBABTA~1YNN", "gpp_sid": [2], "consent": None},
        "gpp_malformed",
    ),
    "us_privacy": ({"us_privacy": "1YN", "consent": None}, "usp_malformed"),
}


@pytest.mark.parametrize("case", MALFORMED, ids=str)
async def test_each_malformed_consent_string_is_a_counted_contextual_fallback(case: str) -> None:
    regs, reason = MALFORMED[case]
    regs = dict(regs)
    user_ext = regs.pop("user_ext", None)
    body = iphone_in_germany(**regs)
    if user_ext is not None:
        body["user"]["ext"] = {"consent": user_ext}
    async with provider_set("builtins", config=CONFIG) as providers:
        got = await _gather(providers, body)
        again = await _gather(providers, body)
    assert not got.personal and got.user_id is None
    assert got.signals["consent.reason"] == reason == again.signals["consent.reason"]
    consent = providers.by_name["consent"].metrics
    assert consent.fallbacks == {reason: 2}
    assert consent.misses["error"] == 0  # decided, not failed
    assert f'fallbacks_total{{provider="consent",cause="{reason}"}} 2' in (
        providers.render_metrics()
    )
    # the request's own signals are still read
    assert got.signals["device.type"] == "mobile" and got.signals["geo.country"] == "DE"


DENIALS = {
    "coppa": ({"coppa": 1, "gdpr": 1}, "coppa"),
    "usnat opt-out": (
        {"gpp": f"{USNAT_HEADER}~{USNAT_OPTED_OUT}", "consent": None},
        "usnat_opted_out",
    ),
    "us_privacy opt-out": ({"us_privacy": "1YYN", "consent": None}, "usp_opted_out"),
    "us_privacy opt-out in gpp": ({"gpp": "DBABTA~1YYN", "consent": None}, "usp_opted_out"),
    "us_privacy opt-out beside a grant": ({"gdpr": 1, "us_privacy": "1NYN"}, "usp_opted_out"),
    "gpp section not read": (
        {"gpp": GPP["headers"][2]["gpp"], "gpp_sid": [5, 6], "consent": None},
        "gpp_unsupported",
    ),
    "2.5 us_privacy": ({"ext": {"us_privacy": "1YYY"}, "consent": None}, "usp_opted_out"),
}


@pytest.mark.parametrize("case", DENIALS, ids=str)
async def test_bid_request_denials_are_contextual(case: str) -> None:
    regs, reason = DENIALS[case]
    async with provider_set("builtins", config=CONFIG) as providers:
        got = await _gather(providers, iphone_in_germany(**dict(regs)))
    assert not got.personal
    assert got.signals["consent.reason"] == reason


@pytest.mark.parametrize(
    "regs",
    [
        {"us_privacy": "1YNN", "consent": None},
        {"us_privacy": "1---", "consent": None},
        {"gpp": f"{USNAT_HEADER}~{USNAT_NOTHING}", "consent": None},
        {"gdpr": 0, "consent": None},
    ],
    ids=str,
)
async def test_no_opt_out_and_no_grant_is_the_default_level(regs: dict[str, Any]) -> None:
    for level in ("contextual", "personal"):
        config = {"consent": {"vendor_id": VENDOR, "default_level": level}}
        async with provider_set("builtins", config=config) as providers:
            got = await _gather(providers, iphone_in_germany(**dict(regs)))
        assert (got.signals["consent.level"], got.signals["consent.reason"]) == (level, "default")


async def test_the_gpp_sections_in_force_are_the_ones_gpp_sid_names() -> None:
    # US Privacy and usnat in one string; only the section in force counts
    text = f"{header(6, 7)}~1YYN~{USNAT_NOTHING}"
    async with provider_set("builtins", config=CONFIG) as providers:
        usnat_only = await _gather(
            providers, iphone_in_germany(gpp=text, gpp_sid=[7], consent=None)
        )
        both = await _gather(providers, iphone_in_germany(gpp=text, consent=None))
        none = await _gather(providers, iphone_in_germany(gpp=text, gpp_sid=[], consent=None))
    assert usnat_only.signals["consent.reason"] == "default"
    assert both.signals["consent.reason"] == "usp_opted_out"
    assert none.signals["consent.reason"] == "default"


def test_the_usnat_gpc_subsection_is_honoured_like_the_header() -> None:
    honoured = ConsentProvider(ConsentConfig(vendor_id=VENDOR, default_level="personal"))
    ignored = ConsentProvider(ConsentConfig(honor_gpc=False, default_level="personal"))
    gpc_only = "BAAAAAAAAABA.YA"  # the default section with its GPC sub-section set
    body = iphone_in_germany(gpp=f"{USNAT_HEADER}~{gpc_only}", consent=None)
    request = make_request(body=body, received_at=NOW)
    assert honoured.decide(request) == ("contextual", "gpc")
    assert ignored.decide(request) == ("personal", "default")


async def test_a_silent_bid_request_leaves_consent_to_the_http_request() -> None:
    body = published("openrtb2.6_01")  # no regs, no user.consent
    cookies = {"euconsent-v2": CONSENTING["tc"]}
    async with provider_set("builtins", config=CONFIG) as providers:
        by_cookie = await _gather(providers, body, cookies=cookies)
        by_query = await _gather(providers, body, query=f"gdpr=1&gdpr_consent={CONSENTING['tc']}")
        nothing = await _gather(providers, body)
    assert by_cookie.signals["consent.reason"] == "granted" and by_cookie.personal
    assert by_query.signals["consent.reason"] == "granted"
    assert nothing.signals["consent.reason"] == "default" and not nothing.personal


async def test_a_speaking_bid_request_is_not_overruled_by_the_exchanges_cookies() -> None:
    cookies = {"sw_consent": "denied"}
    async with provider_set("builtins", config=CONFIG) as providers:
        got = await _gather(providers, iphone_in_germany(), cookies=cookies)
        denied = await _gather(
            providers, iphone_in_germany(gdpr=1, consent=None), cookies={"sw_consent": "granted"}
        )
    assert got.signals["consent.reason"] == "granted"
    assert denied.signals["consent.reason"] == "tcf_missing"


async def test_global_privacy_control_beats_a_granting_bid_request() -> None:
    async with provider_set("builtins", config=CONFIG) as providers:
        got = await _gather(
            providers, iphone_in_germany(), headers={"User-Agent": EXCHANGE_AGENT, "Sec-GPC": "1"}
        )
    assert got.signals["consent.reason"] == "gpc" and not got.personal


async def test_openrtb_2_5_ext_homes_are_read() -> None:
    body = iphone_in_germany(ext={"gdpr": 1}, consent=None)
    body["user"]["ext"] = {"consent": CONSENTING["tc"]}
    async with provider_set("builtins", config=CONFIG) as providers:
        got = await _gather(providers, body)
    assert got.signals["consent.reason"] == "granted"


async def test_an_expired_or_foreign_tc_string_in_the_bid_request_is_contextual() -> None:
    late = CONSENTING["last_updated"] + 400 * 86_400.0
    async with provider_set("builtins", config=CONFIG) as providers:
        expired = await gather(
            providers, make_request(body=iphone_in_germany(), received_at=late, user_id="u")
        )
    async with provider_set("builtins", config={"consent": {"vendor_id": 1}}) as providers:
        foreign = await _gather(providers, iphone_in_germany())
    assert expired.signals["consent.reason"] == "tcf_expired"
    assert foreign.signals["consent.reason"] == "tcf_vendor_denied"


def test_a_get_request_with_the_same_text_is_not_a_bid_request() -> None:
    consent = ConsentProvider(ConsentConfig(vendor_id=VENDOR))
    body = json.dumps(iphone_in_germany(gdpr=1, consent=None)).encode()
    assert consent.decide(make_request(method="GET", body=body, received_at=NOW))[1] == "default"
    assert consent.decide(make_request(method="POST", body=body, received_at=NOW))[1] == (
        "tcf_missing"
    )
