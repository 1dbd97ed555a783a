"""The recommended lists section of `slotwise report` over what `slotwise serve` really served:
the example storefront's home page list, its items' impression and click pixels fired by
position; the report's impressions, clicks and CTR per position are what was fired, and the
same as `slotwise recs report`'s."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slotwise.proxy.report import stats
from tests.conftest import REPO
from tests.proxy.recommend.test_storefront_e2e import (
    ITEMS,
    Visitor,
    _storefront_behind_slotwise,
)

pytestmark = [pytest.mark.slow]
PAGES = 6
HOT = [i["id"] for i in ITEMS if i["category"] == "candles-and-lights" and i["available"]][:3]


def _cli(*argv: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "slotwise", *argv], cwd=REPO, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_the_report_counts_each_position_of_a_served_list(tmp_path: Path) -> None:
    shown: dict[int, int] = {}
    clicked: dict[int, int] = {}
    async with _storefront_behind_slotwise(tmp_path) as base:
        visitor, crowd = Visitor(base), Visitor(base)
        try:
            await crowd.get("/api/home")
            for product in HOT:  # views that make something trend: a list to fill
                await crowd.view(product)
            deadline = time.monotonic() + 30
            while True:  # until the catalogue is loaded, the shop's own list goes out as is
                home = await visitor.get("/api/home")
                if all("tracking" in item for item in home["sections"]["for_you"]["items"]):
                    break
                assert time.monotonic() < deadline, "the home page list was never filled"
                await asyncio.sleep(0.2)
            for page in range(PAGES):
                home = await visitor.get("/api/home")
                items = home["sections"]["for_you"]["items"]
                assert items and all("tracking" in item for item in items)
                for position, item in enumerate(items[:4], 1):  # the first four are seen
                    pixel = await visitor.client.get(item["tracking"]["impression"])
                    assert pixel.status_code in (200, 204), pixel.text
                    shown[position] = shown.get(position, 0) + 1
                    if position == 1 + page % 2:  # positions 1 and 2 get a click in turn
                        click = await visitor.client.get(item["tracking"]["click"])
                        assert click.status_code in (200, 204), click.text
                        clicked[position] = clicked.get(position, 0) + 1
        finally:
            await visitor.aclose()
            await crowd.aclose()
    store = f"sqlite://{tmp_path}/state.db"
    report = json.loads(_cli("report", "--store", store, "--format", "json"))
    lists = {k["name"]: k for k in report["recommendations"]}
    home_list = lists["home_for_you"]
    assert home_list["decisions"] >= PAGES  # and the page that found the list filled
    assert home_list["impressions"] == sum(shown.values())
    assert home_list["clicks"] == sum(clicked.values())
    positions = {p["position"]: p for p in home_list["positions"]}
    for position, count in shown.items():
        got = positions[position]
        assert (got["impressions"], got["clicks"]) == (count, clicked.get(position, 0))
        expected = stats.wilson(clicked.get(position, 0), count)
        assert (got["ctr"]["value"], got["ctr"]["low"], got["ctr"]["high"]) == pytest.approx(
            (expected.value, expected.low, expected.high)
        )
    # the same counts as slotwise recs report's (the same code reads them)
    recs = {k["name"]: k for k in json.loads(_cli("recs", "report", "--store", store,
                                                  "--format", "json"))}  # fmt: skip
    mine = recs["home_for_you"]
    assert (mine["impressions"], mine["clicks"], mine["decisions"]) == (
        home_list["impressions"], home_list["clicks"], home_list["decisions"]
    )  # fmt: skip
    text = _cli("report", "--store", store)
    assert "home_for_you:" in text and "position  1:" in text
