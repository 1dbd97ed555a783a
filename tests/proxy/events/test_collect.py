"""The event endpoints: batch, pixel, validate, dedup, consent, SDK."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import msgspec
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from slotwise.proxy.events import (
    EventCollector,
    EventsConfig,
    StoredEvent,
    events_routes,
    history_key,
)
from slotwise.proxy.events.endpoints import PIXEL_GIF
from slotwise.proxy.state import open_store
from tests.conftest import REPO
from tests.proxy.events.conftest import Harness, history_of


def event(kind: str = "page_view", eid: str = "e1", **fields: Any) -> dict[str, Any]:
    return {"type": kind, "id": eid, "time": time.time(), **fields}


async def stored(h: Harness) -> list[StoredEvent]:
    entries = await h.store.log_read("events", count=10_000)
    return [msgspec.json.decode(e.data, type=StoredEvent) for e in entries]


async def test_batch_is_stored_with_identifiers_under_consent(harness: Harness) -> None:
    batch = {
        "consent": "personal",
        "events": [
            event("page_view", "p1", user_id="u1", properties={"path": "/"}),
            event("add_to_cart", "c1", user_id="u1", properties={"product_id": "sku-1"}),
            event(
                "purchase",
                "o1",
                user_id="u1",
                decision_id="d-9",
                properties={
                    "order_id": "order-1",
                    "items": [{"product_id": "sku-1", "quantity": 2, "price": 10.0}],
                    "value": 20.0,
                    "currency": "EUR",
                },
            ),
        ],
    }
    response = await harness.client.post("/_sw/events", json=batch)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "accepted": 3, "duplicates": 0, "suppressed": 0, "consent": "personal"
    }  # fmt: skip
    records = await stored(harness)
    assert [r.event.id for r in records] == ["p1", "c1", "o1"]
    assert all(r.event.user_id == "u1" and r.consent == "personal" for r in records)
    assert records[2].event.decision_id == "d-9"
    entries = await harness.store.log_read("events")
    assert {e.subject for e in entries} == {"u1"}
    history = await history_of(harness.store, "u1", 3)  # may be updated after the reply
    assert [i.event for i in history] == ["page_view", "add_to_cart", "purchase"]


async def test_without_consent_identifiers_are_stripped(harness: Harness) -> None:
    batch = {"events": [event("page_view", "p1", user_id="u1", anonymous_id="a1")]}
    response = await harness.client.post("/_sw/events", json=batch)
    assert response.json()["consent"] == "contextual"
    (record,) = await stored(harness)
    assert record.event.user_id is None and record.event.anonymous_id is None
    assert (await harness.store.log_read("events"))[0].subject is None
    assert await harness.store.history(history_key("u1")) == []


async def test_gpc_overrides_stated_consent(harness: Harness) -> None:
    batch = {"consent": "personal", "events": [event(user_id="u1")]}
    response = await harness.client.post("/_sw/events", json=batch, headers={"Sec-GPC": "1"})
    assert response.json()["consent"] == "contextual"
    (record,) = await stored(harness)
    assert record.event.user_id is None


async def test_consent_cookie_is_honoured(harness: Harness) -> None:
    harness.client.cookies.set("sw_consent", "personal")
    response = await harness.client.post("/_sw/events", json={"events": [event(user_id="u1")]})
    assert response.json()["consent"] == "personal"
    harness.client.cookies.set("sw_consent", "denied")
    batch = {"consent": "personal", "events": [event(eid="e2", user_id="u1")]}
    response = await harness.client.post("/_sw/events", json=batch)
    assert response.json()["consent"] == "contextual"  # the site's own denial is final


async def test_duplicates_are_accepted_and_stored_once(harness: Harness) -> None:
    batch = {"events": [event(eid="same"), event(eid="same"), event(eid="other")]}
    first = await harness.client.post("/_sw/events", json=batch)
    assert first.json()["accepted"] == 2 and first.json()["duplicates"] == 1
    again = await harness.client.post("/_sw/events", json=batch)
    assert again.status_code == 200
    assert again.json()["accepted"] == 0 and again.json()["duplicates"] == 3
    assert [r.event.id for r in await stored(harness)] == ["same", "other"]


async def test_bare_array_and_text_plain_beacon(harness: Harness) -> None:
    response = await harness.client.post(
        "/_sw/events",
        content=msgspec.json.encode([event(eid="b1")]),
        headers={"Content-Type": "text/plain;charset=UTF-8"},
    )
    assert response.status_code == 200, response.text
    assert [r.event.id for r in await stored(harness)] == ["b1"]


async def test_server_time_fills_a_missing_time(harness: Harness) -> None:
    before = time.time()
    await harness.client.post("/_sw/events", json={"events": [{"type": "click", "id": "c"}]})
    (record,) = await stored(harness)
    assert record.event.time is not None and record.event.time >= before


async def test_validate_stores_nothing(harness: Harness) -> None:
    good = await harness.client.post("/_sw/events/validate", json={"events": [event()]})
    assert good.status_code == 200
    assert good.json()["valid"] is True
    bad = await harness.client.post(
        "/_sw/events/validate", json={"events": [event(), {"type": "click"}]}
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["rejections"] == [
        {"path": "$.events[1]", "reason": "Object missing required field `id`"}
    ]
    assert await harness.store.log_length("events") == 0


async def test_pixel_records_one_event_and_returns_a_gif(harness: Harness) -> None:
    response = await harness.client.get(
        "/_sw/px",
        params={"t": "click", "did": "d-1", "p.slot": "headline", "p.variant": "h2", "cb": "9"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/gif"
    assert response.content == PIXEL_GIF
    assert response.headers["cache-control"].startswith("no-store")
    (record,) = await stored(harness)
    assert record.event.id == "d-1.click"  # tracking URLs dedupe per decision and type
    assert record.event.properties.slot == "headline"  # type: ignore[union-attr]
    again = await harness.client.get("/_sw/px", params={"t": "click", "did": "d-1"})
    assert again.status_code == 200
    assert await harness.store.log_length("events") == 1
    # a decision id near the length limit still gets one event per (decision, type)
    for _ in range(2):
        long_id = await harness.client.get("/_sw/px", params={"t": "click", "did": "d" * 125})
        assert long_id.status_code == 200, long_id.text
    assert await harness.store.log_length("events") == 2


async def test_pixel_coerces_numbers_and_names_bad_parameters(harness: Harness) -> None:
    ok = await harness.client.get(
        "/_sw/px", params={"t": "conversion", "id": "v1", "p.value": "12.5", "p.currency": "EUR"}
    )
    assert ok.status_code == 200, ok.text
    (record,) = await stored(harness)
    assert record.event.properties.value == 12.5  # type: ignore[union-attr]
    bad = await harness.client.get("/_sw/px", params={"t": "conversion", "p.value": "lots"})
    assert bad.status_code == 400
    assert bad.json()["error"]["rejections"][0]["path"] == "$.query.properties.value"
    unknown = await harness.client.get("/_sw/px", params={"t": "click", "slot": "x"})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["rejections"][0]["path"] == "$.query.slot"


async def test_sdk_is_served_with_an_etag(harness: Harness) -> None:
    response = await harness.client.get("/_sw/sdk.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/javascript")
    assert b"sendBeacon" in response.content
    cached = await harness.client.get(
        "/_sw/sdk.js", headers={"If-None-Match": response.headers["etag"]}
    )
    assert cached.status_code == 304


async def test_tcf_string_is_judged_with_the_proxy_consent_config() -> None:
    from slotwise.plugins.builtin.configs import ConsentConfig

    # a real TC string (vendor 284, purposes 1, 3, 4), from the consent provider's test data
    data = json.loads((REPO / "tests/plugins/data/tcf_v2.json").read_text())["consenting"]
    old_enough = 36_500.0  # the sample is from 2020: accept its age for this test

    async def consent_with(vendor: int) -> str:
        config = ConsentConfig(vendor_id=vendor, max_age_days=old_enough)
        async with open_store("memory://") as store:
            routes = events_routes(EventCollector(store, EventsConfig()), consent=config)
            transport = httpx.ASGITransport(app=Starlette(routes=[Mount("/_sw", routes=routes)]))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                response = await client.post(
                    "/_sw/events",
                    params={"gdpr": "1", "gdpr_consent": data["tc"]},
                    json={"events": [event(user_id="u1")]},
                )
                return str(response.json()["consent"])

    assert await consent_with(data["vendor"]) == "personal"
    assert await consent_with(1) == "contextual"  # our vendor has no consent in that string


async def test_retention_trims_old_events_and_decisions(harness: Harness) -> None:
    from slotwise.proxy.state import LogRecord

    await harness.client.post("/_sw/events", json={"events": [event(eid="old")]})
    await harness.store.log_append("decisions", [LogRecord(b"d", id="d1")])
    assert await harness.collector.apply_retention() == 0  # nothing is 90 days old
    short = EventCollector(harness.store, EventsConfig(event_retention=0.05))
    await asyncio.sleep(0.1)
    await harness.client.post("/_sw/events", json={"events": [event(eid="new")]})
    assert await short.apply_retention() == 2
    assert [r.event.id for r in await stored(harness)] == ["new"]


async def test_retention_trims_old_audit_records_after_their_own_retention(
    harness: Harness,
) -> None:
    """The audit log (erasures, profile imports) is kept ``audit_retention`` (a year by
    default), apart from the events' retention, and trimmed by the same pass."""
    collector = harness.collector
    assert collector.config.audit_retention == 365 * 86_400.0
    await collector.set_profile("u-old", b"{}", actor="test")
    await harness.client.post("/_sw/events", json={"events": [event(eid="kept")]})
    events_only = EventCollector(harness.store, EventsConfig(event_retention=0.05))
    short = EventCollector(harness.store, EventsConfig(audit_retention=0.05))
    await asyncio.sleep(0.1)
    await collector.set_profile("u-new", b"{}", actor="test")
    assert await harness.store.log_length("audit") == 2
    assert await short.apply_retention() == 1  # the old audit record; events are 90 days
    assert await harness.store.log_length("audit") == 1
    assert [r.event.id for r in await stored(harness)] == ["kept"]
    assert await events_only.apply_retention() == 1  # the event; the audit record is new
    assert await harness.store.log_length("audit") == 1


def test_audit_retention_is_a_setting_with_a_clear_error() -> None:
    assert EventsConfig.load({}, {"SLOTWISE_EVENTS_AUDIT_RETENTION": "86400"}).audit_retention == (
        86_400.0
    )
    with pytest.raises(ValueError, match="events.audit_retention: must be more than 0, not 0"):
        EventsConfig.load({"audit_retention": 0}, {})


@pytest.mark.parametrize("kept", [None, ("*",), ("page_view",)])
async def test_the_history_keeps_the_properties_of_the_configured_types(
    kept: tuple[str, ...] | None,
) -> None:
    """By default a user's history keeps the properties slotwise reads (carts, price drops,
    recommendations) and only the type and time of the rest; `*` keeps every event's."""
    config = EventsConfig(history_max_len=50)
    if kept is not None:
        config = EventsConfig.load({"history_properties": list(kept)}, {})
    async with open_store("memory://") as store, EventCollector(store, config) as collector:
        app = Starlette(routes=[Mount("/_sw", routes=events_routes(collector))])
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        batch = {
            "consent": "personal",
            "events": [
                event("page_view", "p1", user_id="u1", properties={"url": "https://s.test/"}),
                event("product_view", "v1", user_id="u1", properties={"product_id": "sku-1"}),
                event("add_to_cart", "c1", user_id="u1", properties={"product_id": "sku-1"}),
            ],
        }
        async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as c:
            response = await c.post("/_sw/events", json=batch)
        assert response.status_code == 200, response.text
        await asyncio.sleep(0.05)  # histories are updated right after the reply
        history = await store.history(history_key("u1"))
        # the events log keeps every event whole, whatever the history keeps
        assert all(b'"properties"' in e.data for e in await store.log_read("events"))
    kinds = {item.event: json.loads(item.data) if item.data else None for item in history}
    page, product = {"url": "https://s.test/"}, {"product_id": "sku-1"}
    expected = {
        None: {"page_view": None, "product_view": product, "add_to_cart": product},
        ("*",): {"page_view": page, "product_view": product, "add_to_cart": product},
        ("page_view",): {"page_view": page, "product_view": None, "add_to_cart": None},
    }
    assert kinds == expected[kept]


def test_history_properties_names_event_types() -> None:
    with pytest.raises(ValueError, match="events.history_properties"):
        EventsConfig.load({"history_properties": ["page view"]}, {})
    variable = "SLOTWISE_EVENTS_HISTORY_PROPERTIES"
    assert EventsConfig.load({}, {variable: "*"}).history_properties == ("*",)
    config = EventsConfig.load({}, {variable: "purchase,page_view"})
    assert config.history_properties == ("purchase", "page_view")
