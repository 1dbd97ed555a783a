"""The default workload of ``slotwise bench match``: rules as marketers write them.

Written from what large advertisers' rule sets look like, not from what the matcher indexes
well (the older ``lab/workload.py`` compiles to no residual check at all). A policy file
defines named segments, then one campaign whose rules each combine 1 to 4 predicates drawn from
13 attribute groups: age, gender, country, region, device type, OS, browser, time of day,
weekday, the user's segment list, cart, recent behaviour, and the page or visit. Predicates
use the language's forms as a person would: equality and inequality, value lists and negated
lists, open and closed ranges, ``has any`` / ``has all`` / ``"x" in`` on lists, flags,
``event X within W``, ``count of X within W >= N``. About 3% of the rules OR two attributes
(``a or b``, ``(a and b) or c``), 2% exclude a combination (``not (a and b)``), 3% name a
segment. Requests draw from the same value pools with signals missing as they are in real
traffic (no profile, no consent, an unknown location). Same seed, same workload.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator

from slotwise.dsl.testing import ListHistory
from slotwise.lab.workload import rule_action, slot_lines
from slotwise.types import Context, SignalValue

NOW = 1_767_225_600.0
COUNTRIES = tuple(
    sorted({a + b for a in string.ascii_uppercase for b in string.ascii_uppercase[:8]})
)[:200]
# the few markets most rules name, as real rule sets do
MARKETS = ("DE", "AT", "CH", "FR", "GB", "US", "IT", "ES", "NL", "PL", "SE", "BE")
REGIONS = tuple(f"R{i:02d}" for i in range(80))
DEVICES = ("mobile", "tablet", "desktop", "ctv")
OSES = ("ios", "android", "windows", "macos", "linux", "ipados")
BROWSERS = ("chrome", "safari", "firefox", "edge", "samsung")
GENDERS = ("female", "male", "diverse")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAYPARTS = ("morning", "afternoon", "evening", "night")
INTERESTS = tuple(f"i_{name}" for name in ("outdoor", "running", "fashion", "tech", "home"))
INTERESTS += tuple(f"aud{i}" for i in range(75))
PAGE_TYPES = ("home", "category", "product", "cart", "checkout", "search", "account")
LANGUAGES = ("de", "en", "fr", "it", "es", "nl", "pl")
SOURCES = ("google", "facebook", "newsletter", "instagram", "tiktok", "partner")
EVENTS = ("add_to_cart", "purchase", "product_view", "search", "page_view", "click")
WINDOWS = ("1h", "24h", "1d", "7d", "14d", "30d")
SEGMENT_COUNT = 40


def _q(value: str) -> str:
    return f'"{value}"'


def _list(values: list[str]) -> str:
    return "[" + ", ".join(_q(v) for v in values) + "]"


def _country(rng: random.Random) -> str:
    return rng.choice(MARKETS) if rng.random() < 0.6 else rng.choice(COUNTRIES)


def _age(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.5:
        low = rng.choice((18, 21, 25, 30, 35, 40, 45, 50, 55, 65))
        return f"user.age in {low}..{low + rng.choice((4, 9, 14))}"
    if roll < 0.75:
        return f"user.age >= {rng.choice((18, 21, 25, 30, 40, 50, 60))}"
    return f"user.age < {rng.choice((25, 30, 35, 45))}"


def _geo(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.55:
        return f"geo.country == {_q(_country(rng))}"
    if roll < 0.85:
        return f"geo.country in {_list(rng.sample(MARKETS, rng.randint(2, 6)))}"
    return f"geo.country not in {_list(rng.sample(MARKETS, rng.randint(1, 3)))}"


def _device(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.7:
        return f"device.type == {_q(rng.choice(DEVICES))}"
    if roll < 0.85:
        return f"device.type != {_q(rng.choice(DEVICES))}"
    return f"device.type in {_list(rng.sample(DEVICES, 2))}"


def _hour(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.5:
        low = rng.randrange(0, 22)
        return f"time.hour in {low}..{min(23, low + rng.randint(1, 6))}"
    if roll < 0.7:
        return f"time.hour >= {rng.choice((17, 18, 19, 20, 21))}"
    if roll < 0.8:
        return f"time.hour in {rng.randrange(6, 12)}..<{rng.randrange(12, 18)}"
    return f"time.daypart == {_q(rng.choice(DAYPARTS))}"


def _weekday(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.4:
        return 'time.weekday in ["sat", "sun"]'
    if roll < 0.6:
        return 'time.weekday not in ["sat", "sun"]'
    return f"time.weekday == {_q(rng.choice(WEEKDAYS))}"


def _interest(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.5:
        return f"{_q(rng.choice(INTERESTS))} in user.segments"
    if roll < 0.8:
        return f"user.segments has any {_list(rng.sample(INTERESTS, rng.randint(2, 4)))}"
    if roll < 0.9:
        return f"user.segments has all {_list(rng.sample(INTERESTS, 2))}"
    return f"not {_q(rng.choice(INTERESTS))} in user.segments"


def _cart(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.4:
        return f"cart.value >= {rng.choice((25, 50, 75, 100, 150, 200, 500))}"
    if roll < 0.7:
        low = rng.choice((0, 20, 50, 100, 250))
        return f"cart.value in {low}..<{low + rng.choice((30, 50, 100, 150))}"
    if roll < 0.85:
        return f"cart.count >= {rng.randint(1, 5)}"
    return f"cart.value < {rng.choice((20, 30, 50))}"


def _behaviour(rng: random.Random) -> str:
    roll = rng.random()
    event = rng.choice(EVENTS)
    if roll < 0.5:
        return f"event {event} within {rng.choice(WINDOWS)}"
    if roll < 0.8:
        return f"count of {event} within {rng.choice(WINDOWS)} >= {rng.randint(2, 5)}"
    if roll < 0.9:
        return f"not event purchase within {rng.choice(('7d', '14d', '30d'))}"
    return f"count of {event} within {rng.choice(WINDOWS)} < {rng.randint(1, 3)}"


def _visit(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.3:
        return f"request.page_type == {_q(rng.choice(PAGE_TYPES))}"
    if roll < 0.45:
        return f"request.page_type in {_list(rng.sample(PAGE_TYPES, rng.randint(2, 3)))}"
    if roll < 0.6:
        return f"request.language == {_q(rng.choice(LANGUAGES))}"
    if roll < 0.75:
        return f"request.utm_source == {_q(rng.choice(SOURCES))}"
    if roll < 0.85:
        return "user.is_new" if rng.random() < 0.5 else "not user.is_new"
    return f"user.visits >= {rng.randint(2, 10)}"


def _predicate(rng: random.Random, group: int) -> str:
    if group == 0:
        return _age(rng)
    if group == 1:
        op = "==" if rng.random() < 0.85 else "!="
        return f"user.gender {op} {_q(rng.choice(GENDERS))}"
    if group == 2:
        return _geo(rng)
    if group == 3:
        if rng.random() < 0.7:
            return f"geo.region == {_q(rng.choice(REGIONS))}"
        return f"geo.region in {_list(rng.sample(REGIONS, rng.randint(2, 5)))}"
    if group == 4:
        return _device(rng)
    if group == 5:
        if rng.random() < 0.7:
            return f"device.os == {_q(rng.choice(OSES))}"
        return f"device.os in {_list(rng.sample(OSES, 2))}"
    if group == 6:
        op = "==" if rng.random() < 0.8 else "!="
        return f"device.browser {op} {_q(rng.choice(BROWSERS))}"
    if group == 7:
        return _hour(rng)
    if group == 8:
        return _weekday(rng)
    if group == 9:
        return _interest(rng)
    if group == 10:
        return _cart(rng)
    if group == 11:
        return _behaviour(rng)
    return _visit(rng)


GROUPS = 13
# how many predicates a rule has: most rules are short
SIZES = (1, 2, 3, 4)
SIZE_WEIGHTS = (30, 35, 25, 10)


def segment_definitions(rng: random.Random) -> list[tuple[str, str]]:
    """Named segments a marketing team keeps: a few fixed ones, the rest generated."""
    fixed = [
        ("dach", 'geo.country in ["DE", "AT", "CH"]'),
        ("german_speaking", 'geo.country in ["DE", "AT", "CH"] or request.language == "de"'),
        ("young_mobile", 'user.age in 18..24 and device.type == "mobile"'),
        ("big_cart", "cart.value >= 150 or cart.count >= 5"),
        ("cart_abandoner", "event add_to_cart within 7d and not event purchase within 7d"),
        ("loyal", 'count of purchase within 30d >= 2 or "i_loyal" in user.segments'),
        ("weekend_evening", 'time.weekday in ["sat", "sun"] and time.hour >= 18'),
        ("apple_user", 'device.os in ["ios", "macos", "ipados"]'),
        ("newcomer", "user.is_new or user.visits < 2"),
        ("browsing_not_buying", "count of product_view within 24h >= 3 and cart.value < 20"),
    ]
    defined = list(fixed)
    for number in range(SEGMENT_COUNT - len(fixed)):
        groups = rng.sample(range(GROUPS), rng.randint(1, 3))
        parts = [_predicate(rng, g) for g in groups]
        joiner = " or " if len(parts) > 1 and rng.random() < 0.3 else " and "
        defined.append((f"seg_{number}", joiner.join(parts)))
    return defined


def _condition(rng: random.Random, segments: list[str]) -> str:
    size = rng.choices(SIZES, SIZE_WEIGHTS)[0]
    groups = rng.sample(range(GROUPS), max(size, 2))
    parts = [_predicate(rng, g) for g in groups]
    roll = rng.random()
    if roll < 0.03:  # OR across attributes
        shape = rng.random()
        if shape < 0.5:
            head = f"({parts[0]} or {parts[1]})"
        elif shape < 0.8 and len(parts) >= 3:
            head = f"(({parts[0]} and {parts[2]}) or {parts[1]})"
            parts = parts[:2] + parts[3:]
        else:
            head = f"({parts[0]} or {parts[1]} or {_predicate(rng, rng.randrange(GROUPS))})"
        return " and ".join([head, *parts[2:size]]) if size > 2 else head
    if roll < 0.05:  # excluding a combination
        return " and ".join([f"not ({parts[0]} and {parts[1]})", *parts[2:size]])
    if roll < 0.08:  # a named segment
        named = rng.choice(segments)
        if rng.random() < 0.15:
            named = f"not {named}"
        return " and ".join([named, *parts[: size - 1]])
    return " and ".join(parts[:size])


def policy_text(rules: int, seed: int = 7) -> str:
    """A policy file: named segments, then one campaign of ``rules`` rules."""
    rng = random.Random(seed)
    out = ['policy "bench" version 1', ""]
    segments = segment_definitions(rng)
    out.extend(f"segment {name}: {condition}" for name, condition in segments)
    out += ["", "campaign bench {", '  applies when ad.format == "json"']
    out += slot_lines()
    names = [name for name, _ in segments]
    for rule in range(rules):
        actions = [rule_action(rng)]
        if rng.random() < 0.1:
            actions.append(rule_action(rng))
        out.append(f'  rule "r{rule}" when {_condition(rng, names)} then ' + " and ".join(actions))
    out += ["  optimize clicks + 10 * conversions", "  explore epsilon 5%", "}", ""]
    return "\n".join(out)


def _maybe(
    rng: random.Random, signals: dict[str, SignalValue], name: str, p: float, value: SignalValue
) -> None:
    if rng.random() < p:
        signals[name] = value


def signals(rng: random.Random) -> dict[str, SignalValue]:
    """One request's signals, with what real traffic lacks left out."""
    found: dict[str, SignalValue] = {"ad.format": "json"}
    personal = rng.random() < 0.7  # consent to use the profile
    _maybe(rng, found, "geo.country", 0.95, _country(rng))
    _maybe(rng, found, "geo.region", 0.8, rng.choice(REGIONS))
    _maybe(rng, found, "device.type", 0.97, rng.choice(DEVICES))
    _maybe(rng, found, "device.os", 0.9, rng.choice(OSES))
    _maybe(rng, found, "device.browser", 0.9, rng.choice(BROWSERS))
    hour = rng.randrange(24)
    found["time.hour"] = hour
    found["time.daypart"] = DAYPARTS[(hour // 6 + 3) % 4]
    found["time.weekday"] = rng.choice(WEEKDAYS)
    _maybe(rng, found, "request.page_type", 0.9, rng.choice(PAGE_TYPES))
    _maybe(rng, found, "request.language", 0.85, rng.choice(LANGUAGES))
    _maybe(rng, found, "request.utm_source", 0.3, rng.choice(SOURCES))
    if personal:
        _maybe(rng, found, "user.age", 0.5, rng.randint(16, 85))
        _maybe(rng, found, "user.gender", 0.5, rng.choice(GENDERS))
        _maybe(rng, found, "user.is_new", 0.9, rng.random() < 0.3)
        _maybe(rng, found, "user.visits", 0.9, rng.randint(0, 30))
        _maybe(rng, found, "user.segments", 0.8, tuple(rng.sample(INTERESTS, rng.randint(0, 6))))
        if rng.random() < 0.5:
            found["cart.value"] = round(rng.uniform(0, 600), 2)
            found["cart.count"] = rng.randint(1, 8)
    return found


def contexts(count: int, seed: int = 11) -> Iterator[Context]:
    """Request contexts: signals as above and 0-12 recent events."""
    rng = random.Random(seed)
    for _ in range(count):
        found = signals(rng)
        events = []
        if "user.age" in found or rng.random() < 0.5:
            events = [
                (rng.choice(EVENTS), NOW - rng.uniform(0, 40 * 86400))
                for _ in range(rng.randint(0, 12))
            ]
        yield Context(found, NOW, ListHistory(events))
