"""The per-request exchange: claims on slot locations, the tracker origin, giving up."""

from __future__ import annotations

from slotwise.dsl.location import parse_location
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


def test_the_tracker_origin_is_configured_or_the_requests_own() -> None:
    assert _exchange().origin("") == "https://shop.example:8080"
    assert _exchange().origin("https://ads.example") == "https://ads.example"
    assert _exchange(b'evil.example/"<>').origin("") == ""  # not host[:port]: no origin


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
