"""Simulator scenario: triggered campaigns vs standard retargeting (``kind = "triggers"``).

Synthetic shoppers visit over a horizon (Poisson visits); on a visit without a cart they put
something in it with ``cart_rate`` (a value drawn from ``cart_value``), on a visit with a cart
they buy it with ``buy_rate``. That is the world without ads. Two ways to spend the same
reminder creative are compared, each on half the users, each against its own holdout:

- **triggered**: the policy's trigger decides, evaluated by the real compiled trigger
  (``CompiledTrigger.due`` on the user's simulated history, as the proxy does) with the ladder's
  offer for the cart (``offer_for``);
- **retargeting**: the same creative, without offer, shown to every past visitor.

The truth: a cart holder who sees the reminder on a visit buys with ``buy_rate *
reminder_effect * offer_effect[arm]``; a visitor without a cart is not moved by it. A user in
a holdout never sees it. Reported per strategy: the share of users who bought, exposed vs
holdout, the absolute and relative lift with 95% intervals (normal for the difference, the
log-ratio (Katz) interval for the relative lift), and the reminder impressions spent per
incremental conversion. With ``reminder_effect = 1`` and every offer effect 1, no strategy
can lift anything: the intervals must then cover 0.
"""

from __future__ import annotations

import bisect
import math
import random
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slotwise.lab.intervals import Z95, wilson_interval

KIND = "triggers"


@dataclass(frozen=True, slots=True)
class TriggerScenario:
    name: str
    description: str
    seed: int
    users: int
    days: float
    visits_per_day: float
    holdout: float
    cart_rate: float
    buy_rate: float
    cart_value: tuple[float, float]
    reminder_effect: float
    offer_effect: dict[str, float]
    policy: Path
    trigger: str


def load_trigger_scenario(path: Path) -> TriggerScenario:
    """Read a ``kind = "triggers"`` scenario; ValueError says what is wrong."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    try:
        behaviour, policy = data["behaviour"], data["policy"]
        low, high = behaviour["cart_value"]
        scenario = TriggerScenario(
            name=str(data["name"]),
            description=str(data.get("description", "")),
            seed=int(data.get("seed", 7)),
            users=int(data["users"]),
            days=float(data["days"]),
            visits_per_day=float(data["visits_per_day"]),
            holdout=float(data.get("holdout", 0.2)),
            cart_rate=float(behaviour["cart_rate"]),
            buy_rate=float(behaviour["buy_rate"]),
            cart_value=(float(low), float(high)),
            reminder_effect=float(behaviour.get("reminder_effect", 1.0)),
            offer_effect={str(k): float(v) for k, v in behaviour.get("offer_effect", {}).items()},
            policy=path.parent / str(policy["file"]),
            trigger=str(policy["trigger"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a triggers scenario: {exc!r}") from None
    if scenario.users < 100 or not 0 < scenario.holdout < 1 or scenario.days <= 0:
        raise ValueError(f"{path}: users >= 100, 0 < holdout < 1 and days > 0, please")
    for rate in (scenario.cart_rate, scenario.buy_rate):
        if not 0 <= rate <= 1:
            raise ValueError(f"{path}: cart_rate and buy_rate are probabilities")
    return scenario


class _History:
    """An ``EventHistory`` appended in time order (the simulation's clock only moves on)."""

    __slots__ = ("_times",)

    def __init__(self) -> None:
        self._times: dict[str, list[float]] = {}

    def add(self, event: str, at: float) -> None:
        self._times.setdefault(event, []).append(at)

    def count(self, event: str, since: float) -> int:
        times = self._times.get(event)
        return len(times) - bisect.bisect_left(times, since) if times else 0

    def last(self, event: str) -> float | None:
        times = self._times.get(event)
        return times[-1] if times else None


@dataclass(slots=True)
class _Arm:
    users: int = 0
    bought: int = 0
    impressions: int = 0


@dataclass(slots=True)
class _Strategy:
    exposed: _Arm = field(default_factory=_Arm)
    holdout: _Arm = field(default_factory=_Arm)


def run_trigger_scenario(scenario: TriggerScenario, seed: int | None = None) -> dict[str, Any]:
    """Simulate both strategies; the report (see the module docstring)."""
    from slotwise.dsl.loader import compile_sources
    from slotwise.plugins.registry import load_schema
    from slotwise.types import Context, SignalValue

    text = scenario.policy.read_text(encoding="utf-8")
    policy, _ = compile_sources([(str(scenario.policy), text)], load_schema(selection="builtins"))
    trigger = policy.trigger(scenario.trigger)
    rng = random.Random(scenario.seed if seed is None else seed)
    horizon = scenario.days * 86_400.0
    strategies = {"triggered": _Strategy(), "retargeting": _Strategy()}
    for user in range(scenario.users):
        name = "triggered" if user % 2 == 0 else "retargeting"
        held_out = rng.random() < scenario.holdout
        arm = strategies[name].holdout if held_out else strategies[name].exposed
        arm.users += 1
        history = _History()
        cart = 0.0
        bought = False
        now = rng.expovariate(scenario.visits_per_day / 86_400.0)
        while now < horizon:
            history.add("page_view", now)
            if cart > 0:
                rate = scenario.buy_rate
                shown = False
                if not held_out:
                    signals: dict[str, SignalValue] = {
                        "consent.level": "personal", "cart.value": cart
                    }  # fmt: skip
                    ctx = Context(signals, now, history)
                    if name == "triggered" and trigger.due(ctx):
                        offer = trigger.offer_for(ctx)
                        effect = scenario.offer_effect.get(offer.name, 1.0) if offer else 1.0
                        rate, shown = rate * scenario.reminder_effect * effect, True
                    elif name == "retargeting":
                        rate, shown = rate * scenario.reminder_effect, True
                arm.impressions += shown
                if rng.random() < min(rate, 1.0):
                    history.add("purchase", now)
                    cart, bought = 0.0, True
            else:
                if not held_out and name == "retargeting" and history.count("page_view", 0) > 1:
                    arm.impressions += 1  # every past visitor sees it, cart or not
                if rng.random() < scenario.cart_rate:
                    history.add("add_to_cart", now)
                    cart = rng.uniform(*scenario.cart_value)
            now += rng.expovariate(scenario.visits_per_day / 86_400.0)
        arm.bought += bought
    return {
        "scenario": scenario.name,
        "users": scenario.users,
        "strategies": {name: _report(s) for name, s in strategies.items()},
    }


def _report(strategy: _Strategy) -> dict[str, Any]:
    exposed, holdout = strategy.exposed, strategy.holdout
    p1 = exposed.bought / exposed.users if exposed.users else 0.0
    p0 = holdout.bought / holdout.users if holdout.users else 0.0
    se = math.sqrt(p1 * (1 - p1) / max(exposed.users, 1) + p0 * (1 - p0) / max(holdout.users, 1))
    relative = (math.nan, math.nan, math.nan)
    if exposed.bought and holdout.bought:
        log_ratio = math.log(p1 / p0)
        se_log = math.sqrt(
            1 / exposed.bought - 1 / exposed.users + 1 / holdout.bought - 1 / holdout.users
        )
        relative = (
            p1 / p0 - 1,
            math.exp(log_ratio - Z95 * se_log) - 1,
            math.exp(log_ratio + Z95 * se_log) - 1,
        )
    incremental = (p1 - p0) * exposed.users
    return {
        "exposed": {
            "users": exposed.users,
            "conversion": wilson_interval(exposed.bought, exposed.users).as_dict(),
        },
        "holdout": {
            "users": holdout.users,
            "conversion": wilson_interval(holdout.bought, holdout.users).as_dict(),
        },
        "lift": {"value": p1 - p0, "low": p1 - p0 - Z95 * se, "high": p1 - p0 + Z95 * se},
        "relative_lift": dict(zip(("value", "low", "high"), relative, strict=True)),
        "impressions": exposed.impressions,
        "impressions_per_incremental_conversion": (
            exposed.impressions / incremental if incremental > 0 else None
        ),
    }


def render_text(report: dict[str, Any]) -> str:
    lines = [f"{report['scenario']}: {report['users']} users"]
    for name, r in report["strategies"].items():
        e, h = r["exposed"]["conversion"], r["holdout"]["conversion"]
        lift, rel = r["lift"], r["relative_lift"]
        per = r["impressions_per_incremental_conversion"]
        lines.append(
            f"  {name:<11} bought: exposed {e['value']:.2%} [{e['low']:.2%}, {e['high']:.2%}], "
            f"holdout {h['value']:.2%} [{h['low']:.2%}, {h['high']:.2%}]"
        )
        lines.append(
            f"  {'':<11} lift {lift['value']:+.2%} [{lift['low']:+.2%}, {lift['high']:+.2%}], "
            f"relative {_pct(rel['value'])} [{_pct(rel['low'])}, {_pct(rel['high'])}]; "
            f"{r['impressions']} impressions"
            + (f", {per:.0f} per incremental conversion" if per else "")
        )
    return "\n".join(lines)


def _pct(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:+.1%}"


def checks(report: dict[str, Any], effect: bool) -> list[tuple[bool, str]]:
    """With an effect: the triggered lift's interval is above 0 and it spends fewer
    impressions per incremental conversion than retargeting. Without: every interval covers 0."""
    triggered, retargeting = report["strategies"]["triggered"], report["strategies"]["retargeting"]
    if not effect:
        return [
            (r["lift"]["low"] <= 0 <= r["lift"]["high"], f"{name}: lift interval covers 0")
            for name, r in report["strategies"].items()
        ]
    t_per = triggered["impressions_per_incremental_conversion"]
    r_per = retargeting["impressions_per_incremental_conversion"]
    return [
        (triggered["lift"]["low"] > 0, "triggered: lift interval above 0"),
        (
            t_per is not None and (r_per is None or t_per < r_per),
            "triggered: fewer impressions per incremental conversion than retargeting",
        ),
    ]
