"""The simulator: scenario users through the real decision path, the learner and the models.

Every impression runs what production runs: ``BanditRuntime.choose`` (holdout layer, features,
VW per slot), the decision becomes a log record, clicks and conversions drawn from the
scenario's truth become reward records, the ``RewardJoiner`` joins them when the window closes,
the ``Learner`` learns, and every ``publish_every`` impressions it publishes a model version to a
``ModelStore`` that the runtime hot-reloads. When the scenario names a policy file, its compiled
campaign (``slotwise.dsl``) decides what is eligible on every request, so rules and bandit run
together as in the proxy.

Time is simulated (10 impressions a second), so the reward window delays learning exactly as
it would in production. Reports are per ``report_every`` impressions: observed CTR and
conversion of personalised and control traffic, the expected CTR of what was served (from the
truth, less noisy than clicks) and the oracle's (each user shown their segment's best).
"""

from __future__ import annotations

import contextlib
import math
import random
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from slotwise.lab.scenario import Scenario
from slotwise.proxy.bandit.engine import SlotRules
from slotwise.proxy.bandit.runtime import BanditRuntime
from slotwise.proxy.bandit.store import ModelStore
from slotwise.proxy.decision_log import decision_record
from slotwise.proxy.learn.join import RewardJoiner
from slotwise.proxy.learn.learner import Learner
from slotwise.proxy.learn.log import LogRecord, RewardRecord, encode
from slotwise.types import Signals, SignalValue

GREEDY_SAMPLE = 4000  # users drawn to measure the final model without exploration
IMPRESSIONS_PER_SECOND = 10.0
RulesFor = Callable[[Signals], Mapping[str, SlotRules]]


@dataclass(slots=True)
class Tally:
    impressions: int = 0
    clicks: int = 0
    conversions: int = 0
    expected_ctr: float = 0.0
    oracle_ctr: float = 0.0

    def add(self, clicked: bool, converted: bool, expected: float, oracle: float) -> None:
        self.impressions += 1
        self.clicks += clicked
        self.conversions += converted
        self.expected_ctr += expected
        self.oracle_ctr += oracle

    def rate(self, value: float) -> float:
        return value / self.impressions if self.impressions else 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "impressions": self.impressions,
            "ctr": self.rate(self.clicks),
            "conversion_rate": self.rate(self.conversions),
            "expected_ctr": self.rate(self.expected_ctr),
            "oracle_ctr": self.rate(self.oracle_ctr),
        }


@dataclass(slots=True)
class Window:
    end: int
    personalised: Tally = field(default_factory=Tally)
    control: Tally = field(default_factory=Tally)

    @property
    def oracle_share(self) -> float:
        oracle = self.personalised.oracle_ctr
        return self.personalised.expected_ctr / oracle if oracle else 0.0


@dataclass(slots=True)
class SimulationResult:
    scenario: str
    windows: list[Window]
    segments: dict[str, tuple[Tally, Tally]]  # name -> (personalised, control)
    decision_us: list[float]  # wall time of each BanditRuntime.choose
    decision_cpu_us: list[float]  # its CPU time (the same minus preemption by other processes)
    learn_seconds: float  # CPU time spent in Learner.learn
    learned: int
    models_published: int
    # the final model's most probable variants for a sample of users, exploration off:
    # expected CTR over the oracle's, overall and by segment (what was learned, apart from
    # what exploring costs)
    greedy_share: float = 0.0
    greedy_by_segment: dict[str, float] = field(default_factory=dict)

    def totals(self, last: int | None = None) -> tuple[Tally, Tally]:
        chosen = self.windows if last is None else self.windows[-last:]
        personalised, control = Tally(), Tally()
        for window in chosen:
            for total, part in ((personalised, window.personalised), (control, window.control)):
                total.impressions += part.impressions
                total.clicks += part.clicks
                total.conversions += part.conversions
                total.expected_ctr += part.expected_ctr
                total.oracle_ctr += part.oracle_ctr
        return personalised, control

    def reached_oracle_share(self, share: float) -> int | None:
        """Impressions after which every later window stays at or above ``share``."""
        reached = None
        for window in self.windows:
            if window.oracle_share >= share:
                reached = reached if reached is not None else window.end
            else:
                reached = None
        return reached

    def percentile_us(self, q: float, cpu: bool = False) -> float:
        ordered = sorted(self.decision_cpu_us if cpu else self.decision_us)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]

    @property
    def learn_rate(self) -> float:
        return self.learned / self.learn_seconds if self.learn_seconds else 0.0


def lift_interval(personalised: Tally, control: Tally) -> tuple[float, float, float]:
    """Observed CTR difference (personalised - control) with a 95% normal interval."""
    if personalised.impressions == 0 or control.impressions == 0:
        return 0.0, -math.inf, math.inf
    p1, p0 = personalised.rate(personalised.clicks), control.rate(control.clicks)
    se = math.sqrt(p1 * (1 - p1) / personalised.impressions + p0 * (1 - p0) / control.impressions)
    return p1 - p0, p1 - p0 - 1.96 * se, p1 - p0 + 1.96 * se


def simulate(
    scenario: Scenario,
    *,
    impressions: int | None = None,
    models_dir: Path | None = None,
    rules_for: RulesFor | None = None,
    seed: int | None = None,
    log_path: Path | None = None,
) -> SimulationResult:
    """Run a scenario; models go to ``models_dir`` (a temporary folder when None).

    With ``log_path``, every decision and reward is also written there as the JSONL decision
    log (docs/learning.md), ready for ``slotwise evaluate``.
    """
    stack = contextlib.ExitStack()
    with stack:
        if models_dir is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="slotwise-sim-"))
            models_dir = Path(folder)
        sink = None
        if log_path is not None:
            stream = stack.enter_context(log_path.open("wb"))

            def sink(record: LogRecord) -> None:
                stream.write(encode(record) + b"\n")

        result = _run(scenario, impressions, models_dir, rules_for, seed, sink)
    return result


def _run(
    scenario: Scenario,
    impressions: int | None,
    models_dir: Path,
    rules_for: RulesFor | None,
    seed: int | None,
    sink: Callable[[LogRecord], None] | None,
) -> SimulationResult:
    rng = random.Random(scenario.seed if seed is None else seed)
    campaign = scenario.campaign
    store = ModelStore(models_dir)
    runtime = BanditRuntime(store, rng=random.Random(rng.random()))
    runtime.install([campaign])
    learner = Learner([campaign], store)
    joiner = RewardJoiner(lambda _: campaign.goal, window=scenario.window)
    users = [scenario.draw_user(rng, n) for n in range(scenario.users)]
    total = scenario.impressions if impressions is None else impressions
    windows = [Window(scenario.report_every)]
    segments = {s.name: (Tally(), Tally()) for s in scenario.segments}
    decision_us: list[float] = []
    decision_cpu_us: list[float] = []
    learn_seconds, learned, published = 0.0, 0, 0
    no_rules: Mapping[str, SlotRules] = {}

    def rules_at(signals: dict[str, SignalValue], now: float) -> Mapping[str, SlotRules]:
        if rules_for is not None:
            return rules_for(signals)
        if scenario.compiled is not None:
            return scenario.rules(signals, now)
        return no_rules

    for n in range(total):
        now = n / IMPRESSIONS_PER_SECOND
        user_key, segment, signals = users[rng.randrange(len(users))]
        rules = rules_at(signals, now)
        started, started_cpu = time.perf_counter_ns(), time.thread_time_ns()
        decision = runtime.choose(campaign.name, rules, signals, user_key)
        decision_us.append((time.perf_counter_ns() - started) / 1000)
        decision_cpu_us.append((time.thread_time_ns() - started_cpu) / 1000)
        assert decision is not None
        combination = {c.slot: c.variant for c in decision.choices}
        expected = segment.ctr(combination, scenario.upstream)
        clicked = rng.random() < expected
        converted = clicked and rng.random() < scenario.conversion_probability(segment, combination)
        record = decision_record(decision, f"d{n}", now, "simulated")
        rewards = []
        if clicked:
            rewards.append(RewardRecord(record.id, now + 1.0, "click"))
        if converted:
            rewards.append(RewardRecord(record.id, now + 5.0, "conversion", 20.0))
        joiner.add_decision(record)
        for reward in rewards:
            joiner.add_reward(reward)
        if sink is not None:
            sink(record)
            for reward in rewards:
                sink(reward)
        started = time.thread_time_ns()
        for joined in joiner.close_until(now):
            learned += learner.learn(joined)
        learn_seconds += (time.thread_time_ns() - started) / 1e9
        if (n + 1) % scenario.publish_every == 0:
            published += len(learner.publish())
            runtime.reload()
        window = windows[-1]
        if n + 1 > window.end:
            window = Window(window.end + scenario.report_every)
            windows.append(window)
        tally = window.control if decision.holdout else window.personalised
        tally.add(clicked, converted, expected, segment.oracle_ctr())
        segments[segment.name][1 if decision.holdout else 0].add(
            clicked, converted, expected, segment.oracle_ctr()
        )
    model = runtime.snapshot.models[campaign.name]
    # a generator of its own (seeded from the run's), so the sample is reproducible too
    sample = random.Random(rng.random())
    got: dict[str, float] = {}
    best: dict[str, float] = {}
    end = total / IMPRESSIONS_PER_SECOND
    for _ in range(GREEDY_SAMPLE):
        _, segment, signals = users[sample.randrange(len(users))]
        combination = model.greedy(rules_at(signals, end), signals, runtime.features)
        got[segment.name] = got.get(segment.name, 0.0) + segment.ctr(combination, scenario.upstream)
        best[segment.name] = best.get(segment.name, 0.0) + segment.oracle_ctr()
    return SimulationResult(
        scenario.name,
        windows,
        segments,
        decision_us,
        decision_cpu_us,
        learn_seconds,
        learned,
        published,
        greedy_share=sum(got.values()) / sum(best.values()),
        greedy_by_segment={name: got[name] / best[name] for name in sorted(got)},
    )
