"""``slotwise bench offer-creatives``: what an offer in an ad creative adds to a decision.

One OpenRTB bid response carrying the published Native 1.2 example 6.1 markup (with its bid
request, for the asset types), a consenting German mobile user, and two policies that differ
only in one slot: campaign ``native_feed`` (a headline of 2 variants) and, in the ``offer``
policy, its ``deal`` slot at ``native:data:desc`` taking its text from the ``checkout`` offer
set of policies/checkout.sw (8 arms, 4 guards). Both run with a Vowpal Wabbit model per campaign
and offer set (``BanditRuntime``, as ``slotwise serve --models`` runs them). Per decision the
campaigns step runs on a freshly parsed document (not timed), the two policies alternating, so
both see the same machine. Reports the median and p99 of this thread's CPU time per decision
for each, for all decisions and for those no other process interrupted (no involuntary context
switch of this thread), the difference of the medians, and the percentiles of the paired
differences (each decision of the offer policy less the plain one beside it): the
offer-in-creative step's own cost (guards, the offer set's bandit draw, the label written, the
landing URL, its trackers and its decision record).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from slotwise.dsl.compiled import CompiledPolicySet
from slotwise.dsl.loader import compile_sources
from slotwise.lab.offers_bench import percentile, preempted
from slotwise.plugins.gather import Gathered
from slotwise.plugins.registry import default_schema
from slotwise.proxy.adapters import parse_response
from slotwise.proxy.bandit.runtime import BanditRuntime
from slotwise.proxy.bandit.store import ModelStore
from slotwise.proxy.chooser import BanditChooser
from slotwise.proxy.decide import Engine
from slotwise.proxy.events.decisions import DecisionLog
from slotwise.proxy.exchange import Exchange
from slotwise.proxy.metrics import ProxyMetrics
from slotwise.proxy.offer_chooser import OfferChooser
from slotwise.proxy.offers_config import OffersConfig
from slotwise.proxy.personalisers.campaigns import Campaigns
from slotwise.proxy.policy_snapshot import PolicySnapshot
from slotwise.proxy.state.memory import MemoryStore
from slotwise.proxy.tracking import ClickSigner
from slotwise.types import NoHistory

ROOT = Path(__file__).resolve().parents[1]
OFFERS = (ROOT / "policies" / "checkout.sw").read_text()
NATIVE = ROOT / "tests" / "data" / "iab" / "native-1.2"
CAMPAIGN = """
campaign native_feed {
  applies when ad.format == "openrtb"
  slot headline at "native:title" {
    variant spring "Spring deals are here"
    variant save "Save on the new season"
  }
%s}
"""
DEAL = '  slot deal at "native:data:desc" from offers checkout\n'
SIGNALS: dict[str, Any] = {
    "consent.level": "personal",
    "user.segments": ("loyal",),
    "user.visits": 4,
    "user.is_new": False,
    "geo.country": "DE",
    "device.type": "mobile",
    "request.page_type": "article",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--decisions", type=int, default=20_000, help="per policy")
    parser.add_argument("--format", choices=("text", "json"), default="text")


def _bid() -> tuple[bytes, bytes]:
    """The bid request and response: Native example 6.1 in one bid's ``adm``."""
    native_request = json.loads(
        (NATIVE / "native1.2_6.1_social_clickout_bid_request.normalized.json").read_bytes()
    )
    imp = {"id": "1", "tagid": "feed", "native": {"request": json.dumps(native_request)}}
    request = json.dumps({"id": "r", "imp": [imp]}).encode()
    markup = (NATIVE / "native1.2_6.1_social_clickout_bid_response.normalized.json").read_text()
    bid = {"id": "b", "impid": "1", "price": 1.5, "cid": "cmp-native", "adm": markup}
    return request, json.dumps({"id": "r", "seatbid": [{"bid": [bid]}]}).encode()


def _engine(policy: CompiledPolicySet, models: Path, seed: int) -> Engine:
    runtime = BanditRuntime(ModelStore(models), rng=random.Random(seed))
    runtime.install_policy_set(policy)
    metrics = ProxyMetrics()
    return Engine(
        upstream=None,  # type: ignore[arg-type]
        policies=PolicySnapshot(None, default_schema(), metrics),
        chooser=BanditChooser(runtime),
        # nothing here records decisions; the compiled Engine takes a real (unstarted) log
        decision_log=DecisionLog(MemoryStore()),
        metrics=metrics,
        signer=ClickSigner(b"k" * 32, "https://ads.example"),
        offers=OfferChooser(runtime, OffersConfig(), None, random.Random(seed + 1)),
    )


def measure(decisions: int, models: Path) -> dict[str, float]:
    schema = default_schema()
    policies = {
        "plain": compile_sources([("ads.sw", OFFERS + CAMPAIGN % "")], schema)[0],
        "offer": compile_sources([("ads.sw", OFFERS + CAMPAIGN % DEAL)], schema)[0],
    }
    engines = {
        name: _engine(policy, models / name, seed)
        for seed, (name, policy) in enumerate(policies.items())
    }
    request, response = _bid()
    gathered = Gathered(SIGNALS, True, "u-1", NoHistory())
    step = Campaigns()
    cpu: dict[str, list[float]] = {name: [] for name in policies}
    quiet: dict[str, list[float]] = {name: [] for name in policies}
    for n in range(decisions + 1000):
        for name, policy in policies.items():
            exchange = Exchange(
                {"headers": [], "scheme": "https"}, 0.0, policy=policy, gathered=gathered
            )
            exchange.document = parse_response(b"application/json", response, request)
            exchange.now = time.time()
            switches = preempted()
            started = time.thread_time_ns()
            step.personalise(engines[name], exchange)
            used = (time.thread_time_ns() - started) / 1000
            undisturbed = preempted() == switches
            expected = 2 if name == "offer" else 1
            assert len(exchange.records or ()) == expected, "the campaign (or offer) did not decide"
            if n >= 1000:  # warm-up: caches, VW's first predictions
                cpu[name].append(used)
                if undisturbed:
                    quiet[name].append(used)
    figures: dict[str, float] = {"decisions": decisions}
    for name in policies:
        figures[f"{name}_cpu_p50_us"] = percentile(cpu[name], 0.5)
        figures[f"{name}_cpu_p99_us"] = percentile(cpu[name], 0.99)
        figures[f"{name}_undisturbed_cpu_p50_us"] = percentile(quiet[name], 0.5)
        figures[f"{name}_undisturbed_cpu_p99_us"] = percentile(quiet[name], 0.99)
        figures[f"{name}_undisturbed_share"] = len(quiet[name]) / len(cpu[name])
    figures["added_cpu_p50_us"] = figures["offer_cpu_p50_us"] - figures["plain_cpu_p50_us"]
    # each decision of the offer policy less the plain one it alternated with
    paired = [offer - plain for plain, offer in zip(cpu["plain"], cpu["offer"], strict=True)]
    figures["added_paired_cpu_p50_us"] = percentile(paired, 0.5)
    figures["added_paired_cpu_p99_us"] = percentile(paired, 0.99)
    figures["added_undisturbed_cpu_p50_us"] = (
        figures["offer_undisturbed_cpu_p50_us"] - figures["plain_undisturbed_cpu_p50_us"]
    )
    return figures


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="slotwise-offer-creatives-bench-") as folder:
        figures = measure(args.decisions, Path(folder))
    if args.format == "json":
        print(json.dumps(figures, indent=2))
        return 0
    for name, what in (("plain", "campaign alone"), ("offer", "campaign + offer creative")):
        print(
            f"{what}: CPU p50 {figures[f'{name}_cpu_p50_us']:.1f} us, "
            f"p99 {figures[f'{name}_cpu_p99_us']:.1f} us (undisturbed "
            f"{figures[f'{name}_undisturbed_share']:.0%}: p50 "
            f"{figures[f'{name}_undisturbed_cpu_p50_us']:.1f}, p99 "
            f"{figures[f'{name}_undisturbed_cpu_p99_us']:.1f})"
        )
    print(
        f"the offer in the creative adds {figures['added_cpu_p50_us']:.1f} us CPU at the median "
        f"({figures['added_undisturbed_cpu_p50_us']:.1f} us undisturbed); paired decision by "
        f"decision: p50 {figures['added_paired_cpu_p50_us']:.1f} us, p99 "
        f"{figures['added_paired_cpu_p99_us']:.1f} us; {figures['decisions']:.0f} decisions each"
    )
    return 0
