"""Relearning after the feature-layout change (docs/operations.md, "Bandit models past issue
22"), as an operator does it: the earlier learner stopped at T, the store's retained decisions
(until T minus its reward window) and events exported with ``slotwise export``, learned together
(merged by time) with ``slotwise learn --log DECISIONS EVENTS`` into the models directory (a new
lineage numbered after the layout-1 versions), then the new release's learner continuing on the
store. A campaign and an offer set: the decisions are chosen by the proxy's bandit runtime and
stored through its DecisionLog, the clicks, conversions and purchases through the event
collector; every command runs as a subprocess on a real redis-server or SQLite file.

It also pins down why the procedure is needed: a model of the earlier release is refused by the
proxy, and a new consumer of the learner reads nothing of what the live learner already
received (the consumer group is shared), so ``learn --store --consumer NEW`` relearns nothing.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slotwise.dsl.loader import load_policy_set
from slotwise.plugins.registry import default_schema
from slotwise.proxy.bandit.arm_means import MeansData
from slotwise.proxy.bandit.runtime import UNTRAINED, BanditRuntime
from slotwise.proxy.bandit.store import ModelStore
from slotwise.proxy.bandit.training import overlap
from slotwise.proxy.bandit.workspace import LAYOUT
from slotwise.proxy.decision_codec import encode_stored
from slotwise.proxy.decision_log import decision_record
from slotwise.proxy.events.collector import EventCollector
from slotwise.proxy.events.decisions import DecisionLog
from slotwise.proxy.events.schema import (
    ClickEvent,
    ConversionEvent,
    ConversionProps,
    Event,
    Item,
    PurchaseEvent,
    PurchaseProps,
)
from slotwise.proxy.state import open_store
from tests.support.servers import RedisServer, require_binary

POLICY = """policy "relearn" version 1

campaign spring {
  applies when ad.campaign_id == "cmp-spring"
  slot image at "$.creative.image_url" {
    variant img_1 "https://cdn.example/1.jpg"
    variant img_2 "https://cdn.example/2.jpg"
    variant img_3 "https://cdn.example/3.jpg"
  }
  optimize clicks + 5 * conversions
  explore squarecb 10
  holdout 10%
}

offers checkout {
  slot at "$.offer"
  arms none, discount 10%
  optimize revenue - discount_cost
  explore epsilon 10%
  holdout 5%
}
"""
# what each device clicks: the variant the relearned model must prefer there
WINNER = {"mobile": "img_2", "desktop": "img_1"}
DECISIONS = 3000
NAMES = ("spring", "offers.checkout")


@pytest.fixture(params=["sqlite", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    server: RedisServer = request.getfixturevalue("redis")
    cli = require_binary("redis-cli")
    subprocess.run(
        [cli, "-h", "127.0.0.1", "-p", str(server.port), "flushall"],
        check=True,
        capture_output=True,
    )
    return server.url


def _means_count(means: MeansData) -> int:
    """How many rewards an offer set's arm means hold: the counts of the cell of every
    context (``*``), over its arms."""
    return round(sum(sums[0] for sums in means.cells["*"].values()))


def _slotwise(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slotwise", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _ok(*argv: str) -> str:
    done = _slotwise(*argv)
    assert done.returncode == 0, f"slotwise {' '.join(argv)}: {done.stderr}"
    return done.stdout


async def _traffic(
    url: str, policy: Path, start: float
) -> tuple[dict[str, int], dict[str, float], dict[str, float]]:
    """Weeks of traffic as the proxies and collectors stored it: the proxy's bandit chooses
    (untrained: uniform), its DecisionLog stores the record, the collector the events."""
    runtime = BanditRuntime(rng=random.Random(7))
    runtime.install_policy_set(load_policy_set([policy], default_schema()))
    rng = random.Random(11)
    counts = {"decisions": 0, "served": 0, "clicks": 0, "conversions": 0, "offers_served": 0}
    events: list[Event] = []
    served: dict[str, float] = {}  # id -> ts of the decisions that served a variant
    offers: dict[str, float] = {}  # the same, of the offer set
    async with open_store(url) as store:
        async with DecisionLog(store) as log:
            for i in range(DECISIONS):
                ts = start + 600.0 * i  # three weeks, one decision every ten minutes
                device = "mobile" if i % 2 else "desktop"
                user = f"u{i % 400}"
                signals = {"device.type": device, "consent.level": "personal"}
                choice = runtime.choose("spring", {}, signals, user)
                assert choice is not None
                record = decision_record(choice, f"d{i}", ts, "1", format="json")
                assert log.record(encode_stored(record), decision_id=record.id, subject=user)
                counts["decisions"] += 1
                # the checkout's offer a minute later: a 10% discount sells four times as often
                offer = runtime.choose("offers.checkout", {}, signals, user)
                assert offer is not None
                shown = decision_record(offer, f"o{i}", ts + 60, "1", format="json")
                assert log.record(encode_stored(shown), decision_id=shown.id, subject=user)
                counts["decisions"] += 1
                arm = offer.choices[0].variant
                if not offer.holdout:
                    counts["offers_served"] += 1
                    offers[shown.id] = ts + 60
                if arm is not None and rng.random() < (0.4 if arm == "discount_10" else 0.1):
                    redeemed = f"{shown.id}.{arm}" if arm != "none" else None
                    props = PurchaseProps(
                        order_id=f"order{i}",
                        items=[Item(product_id="sku-1", price=50.0)],
                        value=50.0 if arm == "none" else 45.0,
                        currency="USD",
                        offer_id=redeemed,
                    )
                    purchase = PurchaseEvent(
                        id=f"p{i}", time=ts + 600, decision_id=shown.id, properties=props
                    )
                    events.append(purchase)
                if choice.holdout:
                    continue
                counts["served"] += 1
                served[record.id] = ts
                variant = choice.choices[0].variant
                if rng.random() < (0.5 if variant == WINNER[device] else 0.05):
                    events.append(ClickEvent(id=f"c{i}", time=ts + 5, decision_id=record.id))
                    counts["clicks"] += 1
                    if rng.random() < 0.2:
                        props = ConversionProps(value=40.0)
                        events.append(
                            ConversionEvent(
                                id=f"v{i}", time=ts + 300, decision_id=record.id, properties=props
                            )
                        )
                        counts["conversions"] += 1
        collector = EventCollector(store)
        for at in range(0, len(events), 200):
            await collector.collect(events[at : at + 200], consent="personal", received=start)
    return counts, served, offers


def test_relearn_the_retained_log_into_a_layout_3_model(url: str, tmp_path: Path) -> None:
    policy = tmp_path / "relearn.sw"
    policy.write_text(POLICY)
    # three weeks of traffic, the last decision 2 h 5 min ago: inside events.event_retention
    now = time.time()
    start = now - 600.0 * (DECISIONS - 1) - 7500.0
    counts, served_ids, offer_ids = asyncio.run(_traffic(url, policy, start))
    common = ["--policies", str(policy)]

    # the earlier release's learner (a three-hour reward window) ran until now, T: its
    # consumer group acknowledged every decision whose window had closed, the last few are
    # pending; its models are layout 1, which the new release's proxy refuses
    window = 10800.0
    stopped = time.time()
    old = tmp_path / "models-old"
    argv = ["--store", url, "--models", str(old), "--once", "--window", str(window)]
    out = _ok("learn", *common, *argv)
    assert f"{counts['decisions']} decisions and" in out
    for name in NAMES:
        metadata = old / name / "v000001.json"
        data = json.loads(metadata.read_text())
        del data["layout"]  # metadata written before layouts were recorded: layout 1
        metadata.write_text(json.dumps(data))
    compiled = load_policy_set([policy], default_schema())
    refused = BanditRuntime(ModelStore(old))
    refused.install_policy_set(compiled)
    assert [e.code for e in refused.errors] == ["model_layout_mismatch"] * 2
    assert refused.snapshot.versions() == dict.fromkeys(NAMES, UNTRAINED)

    # a new consumer joins the same group: it gets nothing the group already received
    new = tmp_path / "models-new"
    argv = ["--store", url, "--models", str(new), "--consumer", "relearn", "--once"]
    out = _ok("learn", *common, *argv)
    assert "0 decisions and 0 events read" in out
    assert not new.exists()

    # the procedure: the decisions until T minus the window (what the earlier learner
    # acknowledged) and every event, learned together into the models directory: a new lineage
    # numbered after the layout-1 versions, which stay for a rollback
    cut = stopped - window  # midway between two decisions: no clock race at the boundary
    before = {i: ts for i, ts in served_ids.items() if ts < cut}
    assert 0 < len(served_ids) - len(before) < 10
    decisions, events = tmp_path / "decisions.jsonl", tmp_path / "events.jsonl"
    _ok("export", "decisions", "--store", url, "--until", f"{cut:.3f}", "-o", str(decisions))
    _ok("export", "events", "--store", url, "--output", str(events))
    done = _slotwise("learn", *common, "--log", str(decisions), str(events), "--models", str(old))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for name in NAMES:
        assert f"warning: model_layout_mismatch: model {name} v1 was trained" in done.stderr
    assert f"spring: published v2 ({len(before)} examples)" in out
    assert "; 0 late rewards dropped" in out
    models = ModelStore(old)
    info = models.current("spring")
    assert info is not None and info.layout == LAYOUT == 3 and info.examples == len(before)
    assert info.parent is None  # a new lineage, not the layout-1 weights
    assert info.training is not None and info.training.complete
    assert info.training.first_ts == min(before.values())
    assert info.training.last_ts == max(before.values())
    # the offer set's arm means are rebuilt from the retained offer decisions and purchases
    offers_before = sum(ts < cut for ts in offer_ids.values())
    assert f"offers.checkout: published v2 ({offers_before} examples)" in out
    offers = models.current("offers.checkout")
    assert offers is not None and offers.layout == LAYOUT and offers.arm_means is not None
    assert _means_count(offers.arm_means) == offers_before

    # the new release's learner, same consumer as the earlier one, continues from v2 with the
    # decisions the earlier one had not acknowledged: every served decision learned once
    out = _ok("learn", *common, "--store", url, "--models", str(old), "--once")
    served = counts["served"]
    assert f"spring: published v3 ({served} examples)" in out
    info = models.current("spring")
    assert info is not None and info.layout == LAYOUT and info.examples == served
    assert info.training is not None and info.training.complete
    # below 4,096 ids the sample holds every id learned: all the served decisions, no other
    assert len(info.training.sample) == served == len(served_ids)
    assert overlap(info.training, served_ids).share == 1.0
    offers = models.current("offers.checkout")
    assert offers is not None and offers.arm_means is not None
    assert offers.examples == _means_count(offers.arm_means) == counts["offers_served"]
    assert offers.training is not None
    assert overlap(offers.training, offer_ids).share == 1.0

    # the proxy of the new release loads it and prefers, per device, the variant clicked there
    runtime = BanditRuntime(models)
    runtime.install_policy_set(compiled)
    assert runtime.errors == []
    model = runtime.snapshot.models["spring"]
    assert (model.version, model.examples) == ("v3", served)
    for device, winner in WINNER.items():
        signals = {"device.type": device, "consent.level": "personal"}
        assert model.greedy({}, signals, runtime.features) == {"image": winner}
        checkout = runtime.snapshot.models["offers.checkout"]
        assert checkout.version == "v3" and checkout.means is not None
        assert checkout.greedy({}, signals, runtime.features) == {"offer": "discount_10"}
    # the earlier release's versions stay for a rollback (`slotwise model rollback --to 1`)
    assert [(v.version, v.layout) for v in models.versions("spring")] == [(1, 1), (2, 3), (3, 3)]


def test_the_logs_merge_by_time_in_any_order_and_bad_input_is_refused(
    url: str, tmp_path: Path
) -> None:
    """The exports are merged by time, so the files' order does not matter (one file with the
    decisions first and the events after would find every reward late); a bad line or a
    missing file is an error naming it, and nothing is published."""
    policy = tmp_path / "relearn.sw"
    policy.write_text(POLICY)
    counts, _, _ = asyncio.run(_traffic(url, policy, time.time() - 30 * 86400.0))
    decisions, events = tmp_path / "decisions.jsonl", tmp_path / "events.jsonl"
    _ok("export", "decisions", "--store", url, "--output", str(decisions))
    _ok("export", "events", "--store", url, "--output", str(events))
    common = ["learn", "--policies", str(policy)]
    published = []
    for order, files in (("a", [decisions, events]), ("b", [events, decisions])):
        models = tmp_path / f"models-{order}"
        out = _ok(*common, "--log", *map(str, files), "--models", str(models))
        assert f"published v1 ({counts['served']} examples)" in out
        assert "; 0 late rewards dropped" in out
        info = ModelStore(models).current("spring")
        assert info is not None
        published.append(info.sha256)
    assert published[0] == published[1]

    concatenated = tmp_path / "concatenated.jsonl"
    concatenated.write_bytes(decisions.read_bytes() + events.read_bytes())
    out = _ok(*common, "--log", str(concatenated), "--models", str(tmp_path / "models-c"))
    late = int(out.split("; ")[-1].split()[0])
    # all but the rewards of the last hour's decisions (six, at most two rewards each), whose
    # window is still open when the events come
    assert late >= counts["clicks"] + counts["conversions"] - 12

    broken = tmp_path / "broken.jsonl"
    lines = events.read_bytes().splitlines(keepends=True)
    broken.write_bytes(b"".join(lines[:5]) + b'{"type": "reward", "decision_id": 3}\n')
    models = tmp_path / "models-bad"
    missing = tmp_path / "nowhere.jsonl"
    for files, code, error in (
        ([decisions, broken], 1, f"bad_log_record: {broken}:6: Expected `str`, got `int`"),
        ([decisions, missing], 2, f"unreadable_log: {missing}: cannot open"),
    ):
        done = _slotwise(*common, "--log", *map(str, files), "--models", str(models))
        assert done.returncode == code, done.stderr
        assert error in done.stderr and "Traceback" not in done.stderr
    assert not models.exists()
