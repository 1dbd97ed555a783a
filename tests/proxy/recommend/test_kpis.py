"""Section KPI counters (slotwise.proxy.recommend.kpis) on a memory store and a compiled policy:
positions within each list's limit, attribution through a click's decision id, lists the
policy no longer has."""

from __future__ import annotations

import msgspec

from slotwise.dsl.loader import compile_sources
from slotwise.dsl.schema_file import builtin_schema
from slotwise.proxy.events.schema import Event, decode_event
from slotwise.proxy.metrics import KpiCounters, ProxyMetrics
from slotwise.proxy.recommend.kpis import SectionKpis, lists_of
from slotwise.proxy.state.memory import MemoryStore

POLICY = """policy "kpis" version 1
recommend home at "$.items" use trending(24h) limit 3
rerank listing at "$.products" by affinity(clicks: category)
"""


def _event(**fields: object) -> Event:
    event = decode_event(msgspec.json.encode({"id": f"e{id(fields)}", **fields}))
    assert not isinstance(event, Exception) and hasattr(event, "properties"), event
    return event  # type: ignore[return-value]


def _pixel(kind: str, did: str, campaign: str, slot: str) -> Event:
    return _event(type=kind, decision_id=did,
                  properties={"campaign": campaign, "slot": slot, "variant": "sku-1"})  # fmt: skip


async def test_counts_and_attribution() -> None:
    policy, _ = compile_sources([("kpis.sw", POLICY)], builtin_schema())
    assert lists_of(policy) == {"home": 3, "listing": 200} and lists_of(None) == {}
    current: list[object] = [policy]
    counters = KpiCounters()
    kpis = SectionKpis(MemoryStore(), counters, lambda: current[0])
    cart = {"type": "add_to_cart", "decision_id": "D", "properties": {"product_id": "sku-1"}}
    await kpis.observe([
        _pixel("impression", "D", "home", "1"), _pixel("impression", "D", "home", "3"),
        _pixel("impression", "D", "home", "4"),  # beyond the limit
        _pixel("impression", "R", "listing", "48"), _pixel("click", "R", "listing", "48"),
        _pixel("click", "D", "home", "1"), _pixel("click", "X", "a_campaign", "1"),
        _event(**cart),  # the same batch as its click
        _event(type="add_to_cart", decision_id="X", properties={"product_id": "sku-2"}),
    ])  # fmt: skip
    assert counters.impressions.values == {("home", "1"): 1, ("home", "3"): 1,
                                           ("listing", "48"): 1}  # fmt: skip
    assert counters.clicks.values == {("home", "1"): 1, ("listing", "48"): 1}
    assert counters.attributed.values == {("home", "add_to_cart"): 1}
    order = {"order_id": "o1", "value": 20.0, "currency": "EUR", "items": [{"product_id": "a"}]}
    await kpis.observe([_event(type="purchase", decision_id="R", properties=order)])
    assert counters.attributed.get("listing", "purchase") == 1
    assert counters.value.values == {("listing", "EUR"): 20.0}
    current[0] = None  # the list is gone from the policy: nothing more is counted for it
    await kpis.observe([_event(**cart), _pixel("impression", "D", "home", "1")])
    assert counters.attributed.get("home", "add_to_cart") == 1
    assert counters.impressions.get("home", "1") == 1
    text = ProxyMetrics().render()
    assert "# TYPE slotwise_recs_attributed_value_total counter" in text
