"""Section KPIs on /_sw/metrics, end to end through `slotwise serve` in front of
examples/storefront: the home list's impression and click pixels by position, and the
add-to-cart and purchase sent with the clicked item's decision id, attributed to the list;
made-up lists and positions are not counted."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.proxy.recommend.test_storefront_e2e import (
    ITEMS,
    Visitor,
    _storefront_behind_slotwise,
    _until,
)

pytestmark = pytest.mark.slow


def _samples(text: str) -> dict[str, float]:
    return {
        m[1]: float(m[2])
        for m in re.finditer(r"^(slotwise_recs_\w+\{[^}]*\}) (\S+)$", text, re.MULTILINE)
    }


async def test_list_kpis_on_the_metrics_endpoint(tmp_path: Path) -> None:
    hot = [i["id"] for i in ITEMS if i["category"] == "candles-and-lights" and i["available"]][:3]
    async with _storefront_behind_slotwise(tmp_path) as base:
        crowd, newcomer = Visitor(base), Visitor(base)
        try:
            await crowd.get("/api/home")
            for product in hot:
                await crowd.view(product)

            async def tracked() -> list[dict[str, str]] | None:
                items = (await newcomer.get("/api/home"))["sections"]["for_you"]["items"]
                # two positions at least: the trend may hold one view until the next refresh
                tracked = len(items) >= 2 and all("tracking" in i for i in items)
                return [i["tracking"] for i in items] if tracked else None

            tracking = await _until(tracked)
            for url in (tracking[0]["impression"], tracking[1]["impression"],
                        tracking[0]["impression"], tracking[0]["click"]):  # fmt: skip
                assert (await newcomer.client.get(url)).status_code in (200, 204)
            decision = parse_qs(urlsplit(tracking[0]["click"]).query)["did"][0]
            for made_up in ("p.campaign=made_up&p.slot=1", "p.campaign=home_for_you&p.slot=999",
                            "p.campaign=home_for_you&p.slot=%C2%B2"):  # fmt: skip
                url = f"/_sw/px?t=impression&id=x{len(made_up)}.i1&did=x&{made_up}"
                assert (await newcomer.client.get(url)).status_code in (200, 204)
            await newcomer.events(
                {"type": "add_to_cart", "decision_id": decision,
                 "properties": {"product_id": hot[0]}},
                {"type": "add_to_cart", "decision_id": "never-clicked",
                 "properties": {"product_id": hot[1]}},
            )  # fmt: skip
            await newcomer.events(
                {"type": "purchase", "decision_id": decision,
                 "properties": {"order_id": "o-kpi", "value": 12.5, "currency": "GBP",
                                "items": [{"product_id": hot[0]}]}},
            )  # fmt: skip

            expected = {
                'slotwise_recs_impressions_total{list="home_for_you",position="1"}': 1.0,
                'slotwise_recs_impressions_total{list="home_for_you",position="2"}': 1.0,
                'slotwise_recs_clicks_total{list="home_for_you",position="1"}': 1.0,
                'slotwise_recs_attributed_total{list="home_for_you",event="add_to_cart"}': 1.0,
                'slotwise_recs_attributed_total{list="home_for_you",event="purchase"}': 1.0,
                'slotwise_recs_attributed_value_total{list="home_for_you",currency="GBP"}': 12.5,
            }

            async def counted() -> dict[str, float] | None:
                samples = _samples((await newcomer.client.get("/_sw/metrics")).text)
                return samples if samples == expected else None

            await _until(counted)
        finally:
            await crowd.aclose()
            await newcomer.aclose()
