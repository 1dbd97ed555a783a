"""Regenerate docs/img/report*.png and docs/img/dashboard.png (docs/reports.md).

Generated traffic, not a real shop's: a SQLite store filled with the last hour of a
campaign (``banner``, 20% held out, segments by device), an offer set (``welcome``: two arms
and its holdout), a triggered campaign (``cart_abandon`` against its holdout), a recommended
list (``home_for_you``, six positions, a 20% control group) and the visitors' page views and
orders. Then the real code over it: ``slotwise report --store ... --format html`` (a
subprocess), and the dashboard page as ``slotwise learn`` computes it (``LiveReport.update``,
the page the proxies serve). Each page is opened in headless Chromium with the network
blocked and scripts off, and screenshots are written: the report's campaign part, its
offers / triggers / lists / storefront part, and the dashboard's top.

    .venv/bin/python scripts/report_screenshots.py [--out docs/img]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from slotwise.proxy.report.live import LiveReport  # noqa: E402
from slotwise.proxy.state import LogRecord, open_store  # noqa: E402
from tests.support.chromium import chromium  # noqa: E402

WIDTH = 1500


class _Logs:
    def __init__(self, now: float, seed: int = 11) -> None:
        self.rng = random.Random(seed)
        self.start = now - 3300  # 55 minutes of traffic, the last 5 still inside the join
        self.decisions: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.n = 0

    def ts(self) -> float:
        return self.start + self.rng.random() * 3000

    def decision(self, campaign: str, ts: float, device: str, **extra: Any) -> str:
        self.n += 1
        id = f"d{self.n}"
        self.decisions.append(
            {"type": "decision", "id": id, "ts": ts, "campaign": campaign,
             "signals": {"device.type": device, **extra.pop("signals", {})}, **extra}
        )  # fmt: skip
        return id

    def event(self, kind: str, ts: float, visitor: str, **fields: Any) -> None:
        self.n += 1
        event = {"type": kind, "id": f"e{self.n}", "time": ts, "user_id": visitor, **fields}
        self.events.append({"received": ts, "consent": "personal", "event": event})

    def order(self, ts: float, visitor: str, value: float, **extra: Any) -> None:
        properties = {"order_id": f"o{self.n}", "items": [], "value": round(value, 2),
                      "currency": "EUR", **extra.pop("properties", {})}  # fmt: skip
        self.event("purchase", ts, visitor, properties=properties, **extra)


def _device(rng: random.Random) -> str:
    return "tablet" if rng.random() < 0.04 else rng.choice(["mobile", "mobile", "desktop"])


def _campaign(logs: _Logs, visitors: list[str]) -> None:
    rng = logs.rng
    for _ in range(12_000):
        ts, device, visitor = logs.ts(), _device(rng), rng.choice(visitors)
        held = rng.random() < 0.2
        headline = rng.choice(["h1", "h2", "h3"])
        slots = [] if held else [
            {"slot": "headline", "variant": headline, "probability": 1 / 3,
             "candidates": ["h1", "h2", "h3"]},
            {"slot": "cta", "variant": rng.choice(["shop", "save"]), "probability": 0.5,
             "candidates": ["shop", "save"]},
        ]  # fmt: skip
        eligible = {"headline": ["h1", "h2", "h3"], "cta": ["shop", "save"]}
        id = logs.decision("banner", ts, device, holdout=held, holdout_share=0.2, slots=slots,
                           eligible=eligible)  # fmt: skip
        rate = 0.05 if held else {"h1": 0.05, "h2": 0.075, "h3": 0.06}[headline]
        logs.event("impression", ts + 1, visitor, decision_id=id)
        if rng.random() < rate:
            logs.event("click", ts + 4, visitor, decision_id=id)


def _offers(logs: _Logs, visitors: list[str]) -> None:
    rng = logs.rng
    for _ in range(4000):
        ts, device, visitor = logs.ts(), _device(rng), rng.choice(visitors)
        held = rng.random() < 0.2
        arm = "control" if held else rng.choice(["discount_10", "free_shipping"])
        slots = [] if held else [{"slot": "offer", "variant": arm, "probability": 0.5,
                                  "candidates": ["discount_10", "free_shipping"]}]  # fmt: skip
        id = logs.decision("offers.welcome", ts, device, holdout=held, holdout_share=0.2,
                           slots=slots)  # fmt: skip
        if not held:  # the offer id the proxy writes: <decision id>.<arm>
            logs.decisions[-1]["offer"] = f"{id}.{arm}"
        rate = {"control": 0.04, "discount_10": 0.065, "free_shipping": 0.05}[arm]
        if rng.random() < rate:
            value = rng.uniform(30, 140)
            if arm == "discount_10" and rng.random() < 0.8:  # redeemed
                logs.order(ts + 200, visitor, value * 0.9, properties={
                    "offer_id": f"{id}.{arm}", "discount": round(value * 0.1, 2)})  # fmt: skip
            elif arm == "free_shipping" and rng.random() < 0.8:
                logs.order(ts + 200, visitor, value,
                           properties={"offer_id": f"{id}.{arm}", "discount": 4.9})  # fmt: skip
            else:
                logs.order(ts + 200, visitor, value, decision_id=id)


def _triggers(logs: _Logs, visitors: list[str]) -> None:
    rng = logs.rng
    for _ in range(3000):
        ts, device, visitor = logs.ts(), _device(rng), rng.choice(visitors)
        held = rng.random() < 0.2
        slots = [] if held else [{"slot": "banner", "variant": "reminder", "probability": 1.0,
                                  "candidates": ["reminder"]}]  # fmt: skip
        id = logs.decision("rescue", ts, device, holdout=held, holdout_share=0.2, slots=slots,
                           trigger="cart_abandon")  # fmt: skip
        if rng.random() < (0.08 if held else 0.11):
            logs.order(ts + 300, visitor, rng.uniform(20, 90), decision_id=id)


def _lists(logs: _Logs, visitors: list[str]) -> None:
    rng = logs.rng
    for _ in range(3000):
        ts, device, visitor = logs.ts(), _device(rng), rng.choice(visitors)
        slots = [{"slot": str(p), "variant": f"sku{rng.randrange(500)}", "probability": 1.0,
                  "candidates": []} for p in range(1, 7)]  # fmt: skip
        held = int(visitor[1:]) % 5 == 0  # a sticky 20% control group: the shop's own list
        id = logs.decision("home_for_you", ts, device, slots=slots, holdout=held,
                           holdout_share=0.2, signals={"recs.strategy": "hybrid"})  # fmt: skip
        for p in range(1, 7):
            if rng.random() < 0.9 - 0.1 * p:  # lower positions are scrolled to less often
                logs.event("impression", ts + 1, visitor, decision_id=id,
                           properties={"slot": str(p)})  # fmt: skip
                if rng.random() < (0.06 if held else 0.09) / p**0.5:
                    logs.event("click", ts + 5, visitor, decision_id=id,
                               properties={"slot": str(p)})  # fmt: skip
                    if rng.random() < 0.2:
                        logs.event("add_to_cart", ts + 60, visitor, decision_id=id)
                        if rng.random() < 0.5:
                            logs.order(ts + 300, visitor, rng.uniform(15, 90), decision_id=id)


def _pages(logs: _Logs, visitors: list[str]) -> None:
    rng = logs.rng
    for visitor in visitors:
        t = logs.ts()
        for _ in range(rng.choice([1, 1, 2, 3])):  # sessions, 40 minutes or more apart
            for _ in range(rng.choice([1, 1, 2, 4, 6, 9])):
                logs.event(rng.choice(["page_view", "product_view"]), t, visitor)
                t += rng.uniform(10, 120)
            t += 2400


def generate(now: float) -> _Logs:
    logs = _Logs(now)
    visitors = [f"u{i}" for i in range(2500)]
    for part in (_campaign, _offers, _triggers, _lists, _pages):
        part(logs, visitors)
    logs.decisions.sort(key=lambda d: d["ts"])
    logs.events.sort(key=lambda e: e["received"])
    return logs


async def _fill(url: str, logs: _Logs) -> None:
    async with open_store(url) as store:
        for log, items in (("decisions", logs.decisions), ("events", logs.events)):
            data = [LogRecord(json.dumps(item).encode()) for item in items]
            for start in range(0, len(data), 5000):
                await store.log_append(log, data[start : start + 5000])


async def _dashboard(url: str, now: float) -> bytes:
    async with open_store(url) as store:
        live = LiveReport(store, segment_by=("device.type",))
        await live.update(now)
        return live.page


def _shoot(page: Path, folder: Path, shots: dict[str, tuple[str, str | None]]) -> None:
    """``shots``: file name -> (CSS selector of the first element, of the last one, or None:
    1300 px down); each a screenshot of the page's width from the one to the other."""
    with chromium(folder / "chromium") as browser:
        browser.send("Network.enable")
        browser.send("Network.setBlockedURLs", {"urls": ["http://*", "https://*", "ws://*"]})
        browser.send("Emulation.setScriptExecutionDisabled", {"value": True})
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": WIDTH, "height": 900, "deviceScaleFactor": 1, "mobile": False},
        )
        browser.navigate(page.as_uri())
        browser.wait_for("document.readyState === 'complete'")
        for name, (first, after) in shots.items():
            top = browser.evaluate(
                f"document.querySelector({json.dumps(first)}).getBoundingClientRect().top"
                " + scrollY - 16"
            )
            if after is None:
                bottom = top + 1300
            else:
                bottom = browser.evaluate(
                    f"document.querySelector({json.dumps(after)}).getBoundingClientRect().bottom"
                    " + scrollY + 8"
                )
            clip = {"x": 0, "y": max(0, top), "width": WIDTH, "height": min(bottom - top, 3200),
                    "scale": 1}  # fmt: skip
            shot = browser.send(
                "Page.captureScreenshot",
                {"format": "png", "clip": clip, "captureBeyondViewport": True},
            )
            (folder / name).write_bytes(base64.b64decode(shot["data"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    args = parser.parse_args()
    now = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = f"sqlite:///{folder}/state.db"
        asyncio.run(_fill(url, generate(now)))
        report = folder / "report.html"
        subprocess.run(
            [sys.executable, "-m", "slotwise", "report", "--store", url, "--segment-by",
             "device.type", "--format", "html", "--output", str(report)],
            cwd=REPO, check=True, timeout=300,
        )  # fmt: skip
        dashboard = folder / "dashboard.html"
        dashboard.write_bytes(asyncio.run(_dashboard(url, now)))
        sections = ("section.offers", "section.recommendations")
        lists = ("section.recommendations", "section.recommendations")
        shots = {"report.png": ("h1", None), "report-sections.png": sections,
                 "report-lists.png": lists}  # fmt: skip
        _shoot(report, folder, shots)
        _shoot(dashboard, folder, {"dashboard.png": ("h1", None)})
        for name in (*shots, "dashboard.png"):
            (args.out / name).write_bytes((folder / name).read_bytes())
            print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
