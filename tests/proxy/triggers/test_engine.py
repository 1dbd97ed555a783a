"""Trigger state per user, driven by accepted events, on every store backend (the contract):
enter, cancel, arm, expire, `when`, out-of-order and duplicate events, erasure, notifications."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest

from slotwise.dsl.compiled import CompiledPolicySet
from slotwise.proxy.events import EventCollector, EventsConfig
from slotwise.proxy.events.profiles import ProfileRecord, encode_profile
from slotwise.proxy.events.schema import Event, convert_event
from slotwise.proxy.notify.outbox import OUTBOX_LOG, decode
from slotwise.proxy.state import Store, subject_key
from slotwise.proxy.triggers import TriggerEngine, still_due
from slotwise.proxy.triggers.audiences import audience
from slotwise.proxy.triggers.state import (
    ARMED,
    CANCELLED,
    EXPIRED,
    WAITING,
    decode_record,
    record_key,
)
from tests.proxy.personalisers.support import compile_policy

POLICY = compile_policy(
    """
campaign reminder { slot title at "$.t" { variant back "Back" } }
trigger cart_abandon {
  on event add_to_cart
  unless event purchase within 2h
  wait 1h
  window 7d
  when consent.level == "personal"
  offer by cart.value {
    0..<50 => free_shipping
    50.. => discount 10%
  }
  show campaign reminder
  notify email "cart-reminder" quiet 22:00..08:00
}
trigger forever {
  on event add_to_cart
}
trigger vip_only {
  on event add_to_cart
  window 1d
  when "vip" in user.segments
  notify webhook "crm"
}
"""
)


def _event(kind: str, eid: str, at: float, user: str = "u1", **props: Any) -> Event:
    fields: dict[str, Any] = {"type": kind, "id": eid, "time": at, "user_id": user}
    if kind in ("add_to_cart", "product_view"):
        props = {"product_id": "sku-1", "price": 30.0, "quantity": 2, **props}
    if kind == "purchase":
        props = {"order_id": eid, "items": [{"product_id": "sku-1"}], "value": 60.0,
                 "currency": "EUR", **props}  # fmt: skip
    if props:
        fields["properties"] = props
    event = convert_event(fields)
    assert isinstance(event, Event), event
    return event


async def _collector(store: Store, policy: CompiledPolicySet = POLICY) -> EventCollector:
    collector = EventCollector(store, EventsConfig(history_max_len=100))
    collector.triggers = TriggerEngine(store, lambda: policy)
    return collector


async def _phases(store: Store, now: float, user: str = "u1") -> dict[str, str]:
    record = decode_record(await store.get(record_key(user)))
    assert record is not None
    return {name: state.phase(now) for name, state in record.states.items()}


async def test_enter_wait_arm_expire(store: Store) -> None:
    collector = await _collector(store)
    t0 = time.time() - 10
    await collector.collect([_event("add_to_cart", "c1", t0)], consent="personal")
    assert (await _phases(store, t0 + 1))["cart_abandon"] == WAITING
    assert (await _phases(store, t0 + 3601))["cart_abandon"] == ARMED
    assert (await _phases(store, t0 + 8 * 86400))["cart_abandon"] == EXPIRED
    assert (await _phases(store, t0 + 1000 * 86400))["forever"] == ARMED  # no window: no end
    record = decode_record(await store.get(record_key("u1")))
    assert record is not None
    assert not record.states["vip_only"].when  # not in the vip segment: `when` does not hold
    assert record.states["cart_abandon"].when


async def test_unless_cancels_in_any_arrival_order_and_duplicates_change_nothing(
    store: Store,
) -> None:
    collector = await _collector(store)
    t0 = time.time() - 100
    # the purchase arrives first (out of order), then the cart it cancels, then a duplicate
    await collector.collect([_event("purchase", "o1", t0 + 30)], consent="personal")
    await collector.collect([_event("add_to_cart", "c1", t0)], consent="personal")
    await collector.collect([_event("add_to_cart", "c1", t0)], consent="personal")
    assert (await _phases(store, t0 + 3601))["cart_abandon"] == CANCELLED
    # a purchase after the unless window does not cancel; an older cart event changes nothing
    collector2 = await _collector(store)
    t1 = time.time() - 3 * 3600
    await collector2.collect([_event("add_to_cart", "c2", t1, user="u2")], consent="personal")
    await collector2.collect(
        [_event("purchase", "o2", t1 + 2.5 * 3600, user="u2")], consent="personal"
    )
    await collector2.collect([_event("add_to_cart", "c0", t1 - 50, user="u2")], consent="personal")
    record = decode_record(await store.get(record_key("u2")))
    assert record is not None and record.states["cart_abandon"].started == t1
    assert (await _phases(store, t1 + 3601, "u2"))["cart_abandon"] == ARMED


async def test_no_trigger_state_without_personal_consent(store: Store) -> None:
    collector = await _collector(store)
    await collector.collect([_event("add_to_cart", "c1", time.time())], consent="contextual")
    assert await store.get(record_key("u1")) is None


# the profile as versions before issue 22 stored it (JSON) and as the endpoint stores it now
_PROFILES = {
    "json": b'{"email": "u1@example.org", "time_zone": "Europe/Berlin"}',
    "compact": encode_profile(ProfileRecord(email="u1@example.org", time_zone="Europe/Berlin")),
}


@pytest.mark.parametrize("form", sorted(_PROFILES))
async def test_one_notification_per_episode_cancelled_by_unless_and_erased_with_the_user(
    store: Store, form: str
) -> None:
    collector = await _collector(store)
    await store.set(subject_key("u1", "profile"), _PROFILES[form])
    t0 = time.time() - 10
    await collector.collect([_event("add_to_cart", "c1", t0)], consent="personal")
    await collector.collect([_event("page_view", "p1", t0 + 1)], consent="personal")
    await collector.collect([_event("add_to_cart", "c1", t0)], consent="personal")  # duplicate
    entries = await store.log_read(OUTBOX_LOG)
    (notification,) = [decode(e.data) for e in entries]
    assert notification.trigger == "cart_abandon" and notification.channel == "email"
    assert notification.due == t0 + 3600 and notification.subject == "u1"
    assert notification.traits["email"] == "u1@example.org"
    assert notification.time_zone == "Europe/Berlin"
    assert notification.quiet_start == 22 * 60 and notification.quiet_end == 8 * 60
    assert notification.offer is not None and notification.offer["type"] == "discount"
    assert notification.offer["value"] == 10  # two units at 30: a cart of 60
    assert await still_due(store, notification, now=t0 + 3600)
    assert not await still_due(store, notification, now=t0 + 8 * 86400)  # past the window
    await collector.collect([_event("purchase", "o1", t0 + 5)], consent="personal")
    assert not await still_due(store, notification, now=t0 + 3600)
    # a new episode: a new notification with its own key
    await collector.collect([_event("add_to_cart", "c2", t0 + 10)], consent="personal")
    keys = [decode(e.data).key for e in await store.log_read(OUTBOX_LOG)]
    assert len(keys) == 2 and len(set(keys)) == 2
    assert [m.user for m in await audience(store, POLICY, "cart_abandon", now=t0 + 20)] == ["u1"]
    await collector.erase("u1", actor="test")
    assert await store.get(record_key("u1")) is None
    assert await audience(store, POLICY, "cart_abandon", now=t0 + 20) == []
    assert await store.log_length(OUTBOX_LOG) == 0  # the user's pending notifications too
    later = decode(msgspec.json.encode(notification))
    assert not await still_due(store, later, now=t0 + 3600)


async def test_an_event_from_a_clock_ahead_counts_at_the_proxys_now(store: Store) -> None:
    collector = await _collector(store)
    before = time.time()
    ahead = before + 20 * 3600  # a client clock 20 hours fast (the schema allows up to a day)
    await collector.collect([_event("add_to_cart", "c1", ahead)], consent="personal")
    record = decode_record(await store.get(record_key("u1")))
    assert record is not None
    started = record.states["cart_abandon"].started
    assert before <= started <= time.time()  # not 20 hours from now: armed after `wait`


async def test_a_trigger_cap_limits_its_notifications(store: Store) -> None:
    policy = compile_policy(
        """
trigger ping {
  on event add_to_cart
  window 1d
  notify webhook "crm"
  cap 1 per 1d
}
"""
    )
    collector = await _collector(store, policy)
    t0 = time.time() - 100
    for i in range(3):  # three episodes in one day: one notification
        await collector.collect([_event("add_to_cart", f"c{i}", t0 + i)], consent="personal")
    assert [decode(e.data).trigger for e in await store.log_read(OUTBOX_LOG)] == ["ping"]
    record = decode_record(await store.get(record_key("u1")))
    assert record is not None
    assert (record.states["ping"].notification or "").startswith("capped:")
