"""``slotwise bench offers``: engine time the offers step adds to one decision.

One cart page (storefront JSON with ``"offer": null``), the offer set of policies/checkout.sw
(8 arms, 4 guards) and a Vowpal Wabbit model of it (``BanditRuntime``, as ``slotwise serve
--models`` runs it): per decision, the time of the offers step alone (cart signals, guards,
the bandit's distribution and draw, the offer written, trackers, the record) and of the
chooser alone, with the same document parsed fresh each time (not timed). Reports the median
and p99 in microseconds, of wall time and of this thread's CPU time (the CPU time leaves out
preemption by other processes on a shared machine), and the CPU time of the decisions no other
process interrupted (no involuntary context switch of this thread during the step): after an
interruption the step runs on caches the other process left cold, which on a shared machine
makes most of the CPU p99.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from slotwise.dsl.loader import compile_sources
from slotwise.plugins.gather import Gathered
from slotwise.plugins.registry import default_schema
from slotwise.proxy.adapters import parse_response
from slotwise.proxy.bandit.runtime import BanditRuntime
from slotwise.proxy.bandit.store import ModelStore
from slotwise.proxy.chooser import RuleChooser
from slotwise.proxy.decide import Engine
from slotwise.proxy.events.decisions import DecisionLog
from slotwise.proxy.exchange import Exchange
from slotwise.proxy.metrics import ProxyMetrics
from slotwise.proxy.offer_chooser import OfferChooser
from slotwise.proxy.offer_set import screen
from slotwise.proxy.offers_config import OffersConfig
from slotwise.proxy.personalisers.offers import Offers
from slotwise.proxy.policy_snapshot import PolicySnapshot
from slotwise.proxy.state.memory import MemoryStore
from slotwise.proxy.tracking import ClickSigner
from slotwise.types import Context, NoHistory

POLICY = (Path(__file__).resolve().parents[1] / "policies" / "checkout.sw").read_text()
CART = json.dumps(
    {
        "cart": {
            "subtotal": 120.0,
            "count": 3,
            "currency": "USD",
            "items": [{"product_id": f"sku-{i}", "price": 40.0, "quantity": 1} for i in range(3)],
        },
        "offer": None,
    }
).encode()
SIGNALS: dict[str, Any] = {
    "consent.level": "personal",
    "user.segments": ("loyal",),
    "user.visits": 4,
    "user.is_new": False,
    "geo.country": "DE",
    "device.type": "mobile",
    "request.page_type": "cart",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--format", choices=("text", "json"), default="text")


def preempted() -> int:
    """This thread's involuntary context switches so far: a decision during which the count
    moved was interrupted by another process, and its CPU time includes the cold caches that
    left (on a shared machine, most of the p99)."""
    return resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered)) - 1))]


def measure(decisions: int, models: Path) -> dict[str, float]:
    policy, _ = compile_sources([("checkout.sw", POLICY)], default_schema())
    runtime = BanditRuntime(ModelStore(models), rng=random.Random(1))
    runtime.install_policy_set(policy)
    metrics = ProxyMetrics()
    chooser = OfferChooser(runtime, OffersConfig(max_costliest_share=0.5), None, random.Random(2))
    engine = Engine(
        upstream=None,  # type: ignore[arg-type]
        policies=PolicySnapshot(None, default_schema(), metrics),
        chooser=RuleChooser(random.Random(3)),
        # nothing here records decisions; the compiled Engine takes a real (unstarted) log
        decision_log=DecisionLog(MemoryStore()),
        metrics=metrics,
        signer=ClickSigner(b"k" * 32, "https://shop.example"),
        offers=chooser,
    )
    gathered = Gathered(SIGNALS, True, "u-1", NoHistory())
    step = Offers()
    offers = policy.offers[0]
    step_ns: list[float] = []
    step_cpu: list[float] = []
    quiet_cpu: list[float] = []  # decisions during which no other process took the CPU
    choose_ns: list[float] = []
    for n in range(decisions + 1000):
        exchange = Exchange(
            {"headers": [], "scheme": "https"}, 0.0, policy=policy, gathered=gathered
        )
        exchange.document = parse_response(b"application/json", CART, b"")
        exchange.now = time.time()
        switches = preempted()
        started, cpu = time.perf_counter_ns(), time.thread_time_ns()
        step.personalise(engine, exchange)
        wall, used = time.perf_counter_ns() - started, time.thread_time_ns() - cpu
        undisturbed = preempted() == switches
        ctx = Context({**SIGNALS, "cart.value": 120.0, "cart.count": 3}, exchange.now)
        arms, _ = screen(offers, ctx)
        started = time.perf_counter_ns()
        chooser.choose(offers, arms, ctx.signals, gathered.subject)
        chose = time.perf_counter_ns() - started
        assert exchange.records, "the offer set did not decide"
        if n >= 1000:  # warm-up: caches, VW's first predictions
            step_ns.append(wall / 1000)
            step_cpu.append(used / 1000)
            choose_ns.append(chose / 1000)
            if undisturbed:
                quiet_cpu.append(used / 1000)
    return {
        "decisions": decisions,
        "step_p50_us": percentile(step_ns, 0.5),
        "step_p99_us": percentile(step_ns, 0.99),
        "step_cpu_p50_us": percentile(step_cpu, 0.5),
        "step_cpu_p99_us": percentile(step_cpu, 0.99),
        "undisturbed_share": len(quiet_cpu) / len(step_cpu),
        "undisturbed_cpu_p50_us": percentile(quiet_cpu, 0.5),
        "undisturbed_cpu_p99_us": percentile(quiet_cpu, 0.99),
        "choose_p50_us": percentile(choose_ns, 0.5),
        "choose_p99_us": percentile(choose_ns, 0.99),
    }


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="slotwise-offers-bench-") as folder:
        figures = measure(args.decisions, Path(folder))
    if args.format == "json":
        print(json.dumps(figures, indent=2))
    else:
        print(
            f"offers step, {figures['decisions']} decisions: "
            f"p50 {figures['step_p50_us']:.1f} us, p99 {figures['step_p99_us']:.1f} us "
            f"(CPU p50 {figures['step_cpu_p50_us']:.1f}, p99 {figures['step_cpu_p99_us']:.1f};"
            f" the {figures['undisturbed_share']:.0%} no other process interrupted: CPU p50"
            f" {figures['undisturbed_cpu_p50_us']:.1f}, p99"
            f" {figures['undisturbed_cpu_p99_us']:.1f});"
            f" chooser alone p50 {figures['choose_p50_us']:.1f} us,"
            f" p99 {figures['choose_p99_us']:.1f} us"
        )
    return 0
