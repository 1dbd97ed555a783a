"""The per-request exchange: claims on slot locations, the tracker origin, giving up."""

from __future__ import annotations

import pytest

from slotwise.dsl.location import parse_location
from slotwise.proxy.config import ConfigError, settings_from_document
from slotwise.proxy.decision_log import DecisionRecord
from slotwise.proxy.exchange import Exchange, FailOpen

TITLE = parse_location("$.hero.title")
TEXT = parse_location("$.banner.text")


def _exchange(host: bytes = b"shop.example:8080") -> Exchange:
    return Exchange({"headers": [(b"host", host)], "scheme": "https"}, 0.0)


def test_only_shared_locations_are_claimed_per_unit() -> None:
    exchange = _exchange()
    exchange.claim(0, [TITLE, TEXT])
    assert exchange.claimed is None  # nothing is shared: nothing to track
    exchange.shared = frozenset({parse_location("$['hero']['title']")})
    exchange.claim(0, [TITLE, TEXT])
    assert exchange.contested(0, [TITLE]) and not exchange.contested(0, [TEXT])
    assert not exchange.contested(1, [TITLE])  # another ad unit


def test_the_tracker_origin_is_configured_or_an_allowed_host() -> None:
    allowed = frozenset({b"shop.example:8080"})
    assert _exchange().origin("", allowed) == "https://shop.example:8080"
    assert _exchange(b"SHOP.example:8080").origin("", allowed) == "https://SHOP.example:8080"
    assert _exchange().origin("https://ads.example", allowed) == "https://ads.example"
    assert _exchange().origin("https://ads.example") == "https://ads.example"
    # a Host nobody configured is never an origin: relative tracker URLs instead
    assert _exchange().origin("") == ""
    assert _exchange(b"evil.example").origin("", allowed) == ""
    assert _exchange(b'evil.example/"<>').origin("", frozenset({b'evil.example/"<>'})) == ""


def test_giving_up_keeps_the_records_marked_and_drops_the_rewrite() -> None:
    exchange = _exchange()
    record = DecisionRecord(id="d1", ts=1.0, campaign="hero", slots=[])
    exchange.record(record, "u1")
    exchange.out, exchange.reason = b"rewritten", "no_campaign_applies"
    failed = FailOpen("deadline", exchange.records)
    exchange.fail(failed.cause, failed.records)
    assert exchange.out is None and exchange.reason is None and exchange.cause == "deadline"
    assert [(r.campaign, r.fail_open, s) for r, s in exchange.records or ()] == [
        ("hero", "deadline", "u1")
    ]


@pytest.mark.parametrize("host", ["https://ads.example", "ads.example/x", "ads.éxample", ""])
def test_an_allowed_host_that_is_not_host_port_is_refused(host: str) -> None:
    document = {"tracking": {"allowed_hosts": ["ads.example:8080", host]}}
    with pytest.raises(ConfigError) as caught:
        settings_from_document(document, "slotwise.toml", environ={})
    assert "tracking.allowed_hosts" in str(caught.value)
    assert "is not a Host header value: write host or host:port" in str(caught.value)
