"""A realistic, reproducible matching workload: a policy with N rules and request signals.

About twelve attributes, as a large advertiser's rule set uses them: age ranges, gender, ~200
countries, regions, device type, OS, browser, hour ranges, weekday, segment membership, cart
value ranges and recent behaviour (last event). Each rule has 1 to 4 predicates; a few percent
use OR across attributes or NOT (residual checks). Same seed, same workload.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator

from slotwise.dsl.testing import ListHistory
from slotwise.types import Context, SignalValue

COUNTRIES = tuple(
    sorted({a + b for a in string.ascii_uppercase for b in string.ascii_uppercase[:8]})
)[:200]
REGIONS = tuple(f"R{i:02d}" for i in range(60))
AGES = ((18, 24), (25, 34), (35, 44), (45, 54), (55, 64), (65, None))
HOURS = ((0, 5), (6, 11), (12, 17), (18, 23), (20, 23), (7, 9))
CART = ((0, 50), (50, 100), (100, 250), (250, None))
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEVICES = ("mobile", "tablet", "desktop")
OSES = ("ios", "android", "windows", "macos", "linux")
BROWSERS = ("chrome", "safari", "firefox", "edge")
GENDERS = ("female", "male", "diverse")
SEGMENTS = tuple(f"seg{i}" for i in range(50))
BEHAVIOURS = (
    "event add_to_cart within 7d",
    "event purchase within 30d",
    "event product_view within 24h",
    "count of product_view within 24h >= 3",
    "event search within 1d",
)
SLOTS = {"headline": 8, "image": 6, "cta": 4}
NOW = 1_767_225_600.0


def _range(low: int, high: int | None, half_open: bool) -> str:
    if high is None:
        return f"{low}.."
    return f"{low}..<{high}" if half_open else f"{low}..{high}"


def _predicate(rng: random.Random, attribute: int) -> str:
    if attribute == 0:
        low, high = rng.choice(AGES)
        return f"user.age in {_range(low, high, False)}"
    if attribute == 1:
        return f'user.gender == "{rng.choice(GENDERS)}"'
    if attribute == 2:
        if rng.random() < 0.7:
            return f'geo.country == "{rng.choice(COUNTRIES)}"'
        picks = ", ".join(f'"{c}"' for c in rng.sample(COUNTRIES, 3))
        return f"geo.country in [{picks}]"
    if attribute == 3:
        return f'geo.region == "{rng.choice(REGIONS)}"'
    if attribute == 4:
        if rng.random() < 0.2:
            return f'device.type != "{rng.choice(DEVICES)}"'
        return f'device.type == "{rng.choice(DEVICES)}"'
    if attribute == 5:
        return f'device.os == "{rng.choice(OSES)}"'
    if attribute == 6:
        return f'device.browser == "{rng.choice(BROWSERS)}"'
    if attribute == 7:
        low, high = rng.choice(HOURS)
        return f"time.hour in {_range(low, high, False)}"
    if attribute == 8:
        if rng.random() < 0.5:
            return 'time.weekday in ["sat", "sun"]'
        return f'time.weekday == "{rng.choice(WEEKDAYS)}"'
    if attribute == 9:
        if rng.random() < 0.5:
            return f'"{rng.choice(SEGMENTS)}" in user.segments'
        picks = ", ".join(f'"{s}"' for s in rng.sample(SEGMENTS, 2))
        return f"user.segments has any [{picks}]"
    if attribute == 10:
        low, high = rng.choice(CART)
        return f"cart.value in {_range(low, high, True)}"
    return rng.choice(BEHAVIOURS)


def _condition(rng: random.Random) -> str:
    attributes = rng.sample(range(12), rng.randint(1, 4))
    parts = [_predicate(rng, a) for a in attributes]
    roll = rng.random()
    if roll < 0.02 and len(parts) >= 2:  # OR across attributes: a residual check
        return f"({parts[0]} or {parts[1]})" + "".join(f" and {p}" for p in parts[2:])
    if roll < 0.03:
        parts[0] = f"not {parts[0]}"
    return " and ".join(parts)


def rule_action(rng: random.Random) -> str:
    """A rule's action on one of the bench campaign's slots (pin, prefer, exclude, boost)."""
    slot = rng.choice(list(SLOTS))
    variant = f"{slot[0]}{rng.randrange(SLOTS[slot])}"
    roll = rng.random()
    if roll < 0.005:
        return f"pin {slot} {variant}"
    if roll < 0.4:
        return f"prefer {slot} {variant}"
    if roll < 0.7:
        return f"exclude {slot} {variant}"
    return f"boost {slot} {variant} by {rng.choice((1.2, 1.5, 2))}"


def slot_lines() -> list[str]:
    """The bench campaign's slots and their variants, as policy text lines."""
    out = []
    for slot, count in SLOTS.items():
        out.append(f'  slot {slot} at "$.creative.{slot}" {{')
        out.extend(f'    variant {slot[0]}{i} "{slot} text {i}"' for i in range(count))
        out.append("  }")
    return out


def policy_text(rules: int, seed: int = 7) -> str:
    """A policy file with one campaign of ``rules`` rules (plus slots and settings)."""
    rng = random.Random(seed)
    out = ['policy "bench" version 1', "", "campaign bench {", '  applies when ad.format == "json"']
    out += slot_lines()
    for rule in range(rules):
        out.append(f'  rule "r{rule}" when {_condition(rng)} then {rule_action(rng)}')
    out += ["  optimize clicks + 10 * conversions", "  explore epsilon 5%", "}", ""]
    return "\n".join(out)


def contexts(count: int, seed: int = 11) -> Iterator[Context]:
    """Request contexts drawn from the same value pools (some signals missing)."""
    rng = random.Random(seed)
    for _ in range(count):
        signals: dict[str, SignalValue] = {"ad.format": "json"}
        if rng.random() < 0.8:
            signals["user.age"] = rng.randint(16, 80)
        if rng.random() < 0.7:
            signals["user.gender"] = rng.choice(GENDERS)
        signals["geo.country"] = rng.choice(COUNTRIES)
        signals["geo.region"] = rng.choice(REGIONS)
        signals["device.type"] = rng.choice(DEVICES)
        signals["device.os"] = rng.choice(OSES)
        signals["device.browser"] = rng.choice(BROWSERS)
        signals["time.hour"] = rng.randint(0, 23)
        signals["time.weekday"] = rng.choice(WEEKDAYS)
        signals["user.segments"] = tuple(rng.sample(SEGMENTS, rng.randint(0, 4)))
        if rng.random() < 0.5:
            signals["cart.value"] = round(rng.uniform(0, 400), 2)
        events = [
            (
                rng.choice(("add_to_cart", "purchase", "product_view", "search")),
                NOW - rng.uniform(0, 14 * 86400),
            )
            for _ in range(rng.randint(0, 6))
        ]
        yield Context(signals, NOW, ListHistory(events))
