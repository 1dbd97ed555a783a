"""Simulator scenarios: synthetic users in segments with a known truth (TOML files).

A scenario names a campaign (slots and variants, exploration, holdout, goal), the creative the
upstream serves when nobody personalises, and segments of users. Each segment has a share of
the traffic, the signals its users carry (a value, a list to pick from, or an integer range
``[lo, hi]``), the CTR of its best combination and, per slot, its winning variant. The truth::

    P(click | segment, combination) = base_ctr * product over slots of factor(segment, variant)
                                      (``combine = "product"``: slots multiply, the default)
                                    = base_ctr * mean over slots of factor(segment, variant)
                                      (``combine = "mean"``: each slot adds its share)
    P(conversion | click)           = conversion * (1 if the CTA slot's winner else cta_penalty)

``factor`` is 1 for the segment's winner, ``upstream_factor`` for the upstream's variant, and
for every other variant a number drawn once (seeded) from ``loser_factor``. With
``effect = false`` every factor is 1: no combination is better than another, so any lift a
report shows is noise. See examples/scenarios/ and docs/learning.md.
"""

from __future__ import annotations

import difflib
import json
import math
import random
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from slotwise.dsl.compiled import Slot
from slotwise.proxy.bandit.campaign import BanditCampaign, action_slot, from_compiled
from slotwise.proxy.bandit.engine import SlotRules
from slotwise.proxy.bandit.errors import BanditError
from slotwise.proxy.bandit.exploration import explore_from_policy
from slotwise.proxy.bandit.store import CAMPAIGN_NAME
from slotwise.types import Context, Goal, Signals, SignalValue

SignalSpecValue = SignalValue | list[Any]


@dataclass(frozen=True, slots=True)
class Segment:
    name: str
    share: float
    signals: Mapping[str, SignalSpecValue]
    base_ctr: float
    conversion: float
    winners: Mapping[str, str]
    factors: Mapping[str, Mapping[str, float]]  # slot -> variant -> factor

    combine: str = "product"

    def ctr(self, combination: Mapping[str, str | None], upstream: Mapping[str, str]) -> float:
        factors = [
            variants[combination.get(slot) or upstream[slot]]
            for slot, variants in self.factors.items()
        ]
        if self.combine == "mean":
            return self.base_ctr * sum(factors) / len(factors)
        probability = self.base_ctr
        for factor in factors:
            probability *= factor
        return probability

    def oracle_ctr(self) -> float:
        return self.base_ctr


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    seed: int
    impressions: int
    report_every: int
    publish_every: int
    window: float
    users: int
    consent_share: float
    campaign: BanditCampaign
    upstream: Mapping[str, str]
    conversion_slot: str | None
    cta_penalty: float
    segments: tuple[Segment, ...]
    effect: bool
    compiled: Any = None  # the CompiledCampaign when the scenario names a policy file

    def rules(self, signals: Signals, now: float) -> Mapping[str, SlotRules]:
        """What the policy's rules leave per slot for these signals (all, without a policy)."""
        if self.compiled is None:
            return {}
        eligibility = self.compiled.eligible(Context(signals, now))
        slots: Mapping[str, SlotRules] = eligibility.slots
        return slots

    def draw_user(
        self, rng: random.Random, number: int
    ) -> tuple[str, Segment, dict[str, SignalValue]]:
        """One simulated user: key, segment (by share), signals, consent (by consent_share)."""
        u, cumulative, segment = rng.random(), 0.0, self.segments[-1]
        for candidate in self.segments:
            cumulative += candidate.share
            if u < cumulative:
                segment = candidate
                break
        signals = self.draw_signals(segment, rng)
        consented = rng.random() < self.consent_share
        signals["consent.level"] = "personal" if consented else "contextual"
        signals["user.is_new"] = False
        return f"user-{number}", segment, signals

    def draw_signals(self, segment: Segment, rng: random.Random) -> dict[str, SignalValue]:
        signals: dict[str, SignalValue] = {}
        for name, spec in segment.signals.items():
            if isinstance(spec, list) and len(spec) == 2 and all(type(x) is int for x in spec):
                signals[name] = rng.randint(spec[0], spec[1])
            elif isinstance(spec, list):
                signals[name] = rng.choice(spec)
            else:
                signals[name] = spec
        return signals

    def conversion_probability(
        self, segment: Segment, combination: Mapping[str, str | None]
    ) -> float:
        if self.conversion_slot is None or not self.effect:
            return segment.conversion
        chosen = combination.get(self.conversion_slot) or self.upstream[self.conversion_slot]
        winner = segment.winners.get(self.conversion_slot)
        return segment.conversion * (1.0 if chosen == winner else self.cta_penalty)


def _fail(path: Path, message: str) -> BanditError:
    return BanditError("bad_scenario", f"{path}: {message}")


MAX_USERS = 1_000_000  # every user is drawn up front: about half a kilobyte each
TOP_KEYS = (
    "name",
    "description",
    "seed",
    "impressions",
    "report_every",
    "publish_every",
    "window",
    "users",
    "consent_share",
    "conversion_slot",
    "effect",
    "policy",
    "campaign",
    "upstream",
    "truth",
    "segments",
)
SEGMENT_KEYS = ("name", "share", "base_ctr", "conversion", "signals", "winners")
TRUTH_KEYS = ("combine", "loser_factor", "upstream_factor", "cta_penalty")
SIGNAL_SPEC = (
    "a value (string, number or boolean), a non-empty list of values to pick from, "
    "or an integer range [low, high]"
)


def _is_number(value: object) -> bool:
    # TOML booleans are Python ints, and inf or nan would only fail later, in the run
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_scalar(value: object) -> bool:
    return isinstance(value, str | int | float)  # bool is an int


def _shown(value: object) -> str:
    """A value as the user wrote it in TOML, for 'got ...'."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        return "a table"
    return repr(value)


def _key(name: str) -> str:
    bare = name.replace("_", "").replace("-", "").isalnum() and name.isascii()
    return name if bare else json.dumps(name, ensure_ascii=False)


def _listed(names: Sequence[str]) -> str:
    if len(names) <= 6:
        return ", ".join(names)
    return f"{', '.join(names[:3])}, ... {names[-1]}, {len(names)} in all"


def _range(low: float, high: float, above: bool) -> str:
    if above:
        return f"a number above {low:g} and at most {high:g}"
    if high == math.inf:
        return f"a number of at least {low:g}"
    return f"a number between {low:g} and {high:g}"


@dataclass(frozen=True, slots=True)
class _Table:
    """One TOML table of a scenario and where it is, so that every error names both."""

    path: Path
    where: str  # "" at the top level, "[truth]", "[[segments]] young_mobile:", ...
    data: Mapping[str, Any]
    prefix: str = ""  # dotted keys of a nested inline table: "signals."

    def fail(self, message: str) -> BanditError:
        return _fail(self.path, f"{self.where} {message}" if self.where else message)

    def wrong(self, key: str, expected: str, value: object) -> BanditError:
        return self.fail(f"{self.prefix}{_key(key)} must be {expected}, got {_shown(value)}")

    def get(self, key: str, expected: str) -> Any:
        if key not in self.data:
            raise self.fail(f"{self.prefix}{_key(key)} is missing: it must be {expected}")
        return self.data[key]

    def at(self, where: str) -> _Table:
        return _Table(self.path, where, self.data, self.prefix)

    def known(self, keys: Sequence[str]) -> None:
        """Refuse unknown settings: a misspelt optional one would silently keep its default."""
        unknown = [key for key in self.data if key not in keys]
        if unknown:
            close = difflib.get_close_matches(unknown[0], keys, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise self.fail(
                f"unknown setting {self.prefix}{_key(unknown[0])}; "
                f"{hint}the settings are {', '.join(keys)}"
            )

    def number(
        self,
        key: str,
        low: float,
        high: float = math.inf,
        default: float | None = None,
        above: bool = False,
    ) -> float:
        """A number in [low, high] (``above``: in (low, high]); required without a default."""
        expected = _range(low, high, above)
        value = self.get(key, expected) if default is None else self.data.get(key, default)
        if not _is_number(value) or not low <= value <= high or (above and value == low):
            raise self.wrong(key, expected, value)
        return float(value)

    def whole(self, key: str, default: int, low: int | None = None, high: int | None = None) -> int:
        expected = "a whole number" if low is None else f"a whole number of at least {low}"
        if high is not None:
            expected += f" and at most {high:,}"
        value = self.data.get(key, default)
        if (
            not _is_number(value)
            or value != int(value)
            or (low is not None and value < low)
            or (high is not None and value > high)
        ):
            raise self.wrong(key, expected, value)
        return int(value)

    def text(self, key: str, default: str | None = None) -> str:
        value = self.get(key, "a string") if default is None else self.data.get(key, default)
        if not isinstance(value, str):
            raise self.wrong(key, "a string", value)
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.wrong(key, "true or false", value)
        return value

    def table(self, key: str, required: bool = False) -> _Table:
        """A sub-table: [key] at the top level, an inline table key = {...} below it."""
        top = not self.where and not self.prefix
        value = self.get(key, "a table") if required else self.data.get(key, {})
        if not isinstance(value, Mapping):
            if top:
                raise self.fail(f"[{key}] must be a table, got {_shown(value)}")
            raise self.wrong(key, "a table", value)
        if top:
            return _Table(self.path, f"[{key}]", value)
        return _Table(self.path, self.where, value, f"{self.prefix}{_key(key)}.")

    def tables(self, key: str, name: str) -> list[_Table]:
        """An array of tables ([[name]] entries), each told where it is by its position."""
        value = self.get(key, f"an array of tables: one [[{name}]] per entry")
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            shown = _shown(value) if not isinstance(value, list) else "an array of other values"
            raise self.fail(
                f"[[{name}]] must be an array of tables (one [[{name}]] per entry), got {shown}"
            )
        if not value:
            raise self.fail(f"needs at least one [[{name}]] entry")
        return [_Table(self.path, f"[[{name}]] #{i}:", entry) for i, entry in enumerate(value, 1)]


@dataclass(frozen=True, slots=True)
class _Truth:
    effect: bool
    low: float
    high: float
    upstream_factor: float
    cta_penalty: float
    combine: str


Slots = Mapping[str, Sequence[str]]  # slot -> its variants' names


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file; a BanditError names the file, the setting and the fix.

    Every setting is checked here, before anything runs, so that a bad value never surfaces as
    a crash in the middle of a simulation.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BanditError("unreadable_scenario", f"{path}: cannot read ({exc.strerror})") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _fail(path, f"not UTF-8 text (byte {exc.start}); a scenario is a TOML file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise _fail(path, f"not valid TOML ({exc})") from exc
    return _build(_Table(path, "", data))


def _build(top: _Table) -> Scenario:
    top.known(TOP_KEYS)
    seed = top.whole("seed", 7)
    campaign, compiled = _campaign(top)
    slots = {slot.name: [v.name for v in slot.variants] for slot in campaign.slots}
    upstream = _upstream(top.table("upstream", required=True), slots)
    truth = _truth(top)
    return Scenario(
        name=top.text("name", top.path.stem),
        description=top.text("description", ""),
        seed=seed,
        impressions=top.whole("impressions", 50_000, low=1),
        report_every=top.whole("report_every", 1_000, low=1),
        publish_every=top.whole("publish_every", 1_000, low=1),
        window=top.number("window", 0.0, default=30.0),
        users=top.whole("users", 20_000, low=1, high=MAX_USERS),
        consent_share=top.number("consent_share", 0.0, 1.0, default=1.0),
        campaign=campaign,
        upstream=upstream,
        conversion_slot=_conversion_slot(top, slots),
        cta_penalty=truth.cta_penalty,
        segments=_segments(top, slots, upstream, truth, random.Random(seed)),
        effect=truth.effect,
        compiled=compiled,
    )


def _campaign(top: _Table) -> tuple[BanditCampaign, Any]:
    """The campaign and, when the scenario names a policy file, its compiled form."""
    raw = top.table("campaign")
    if "policy" in top.data:
        return _policy_campaign(top, raw)
    raw.known(("name", "slots", "explore", "holdout", "goal"))
    name, slots, goal = _campaign_name(raw), _slots(raw), _goal(raw)
    holdout = raw.number("holdout", 0.0, 1.0, default=0.1)
    explore = raw.table("explore")
    explore.known(("kind", "parameter"))
    kind = explore.text("kind") if "kind" in explore.data else None
    parameter = explore.number("parameter", -math.inf) if "parameter" in explore.data else None
    try:
        explored = explore_from_policy(kind, parameter)
        return BanditCampaign(name, slots, explored, holdout, Goal.of(goal)), None
    except BanditError as error:  # the exploration's own checks
        raise raw.fail(error.message) from error
    except ValueError as error:  # the goal's: a metric it does not know
        raise raw.fail(str(error)) from error


def _policy_campaign(top: _Table, raw: _Table) -> tuple[BanditCampaign, Any]:
    # the policy file declares the rest: a setting here would be silently ignored
    raw.known(("name",))
    name = raw.text("name") if "name" in raw.data else None
    policy = top.text("policy")
    compiled = _compiled_campaign(top.path, top.path.parent / policy, name)
    try:
        return from_compiled(compiled), compiled
    except BanditError as error:
        raise _fail(top.path, f"its policy {policy}: {error.message}") from error


def _campaign_name(raw: _Table) -> str:
    name = raw.text("name", "simulated")
    if not CAMPAIGN_NAME.match(name):  # the model store names a folder after it
        raise raw.wrong(
            "name", "letters, digits, _ . - (at most 128, not starting with _ . -)", name
        )
    return name


def _goal(raw: _Table) -> dict[str, float]:
    if "goal" not in raw.data:
        return {"clicks": 1.0}
    goal = raw.table("goal")
    return {term: goal.number(term, -math.inf) for term in goal.data}


def _slots(raw: _Table) -> tuple[Slot, ...]:
    slots: list[Slot] = []
    for entry in raw.tables("slots", "campaign.slots"):
        name = entry.text("name")
        entry = entry.at(f"[[campaign.slots]] {name}:")
        entry.known(("name", "variants"))
        if any(slot.name == name for slot in slots):
            raise entry.fail("a second slot of that name; slot names must be unique")
        slots.append(action_slot(name, _variants(entry, name)))
    return tuple(slots)


def _variants(entry: _Table, slot: str) -> list[str]:
    expected = "a count of at least 2 or a list of at least two distinct names"
    value = entry.get("variants", expected)
    if _is_number(value) and value == int(value) and value >= 2:
        return [f"{slot}_{i}" for i in range(int(value))]
    if (
        isinstance(value, list)
        and len(value) >= 2
        and all(isinstance(v, str) for v in value)
        and len(set(value)) == len(value)
    ):
        return list(value)
    raise entry.wrong("variants", expected, value)


def _upstream(table: _Table, slots: Slots) -> dict[str, str]:
    """What the upstream serves: one variant for every slot, exactly."""
    if sorted(table.data) != sorted(slots):
        raise table.fail(
            f"must name one variant for each slot ({_listed(list(slots))}), "
            f"it names {_listed(list(table.data)) or 'none'}"
        )
    return {slot: _variant(table, slot, slots) for slot in slots}


def _variant(table: _Table, slot: str, slots: Slots) -> str:
    value = table.data[slot]
    if not isinstance(value, str) or value not in slots[slot]:
        raise table.wrong(slot, f"a variant of slot {slot} ({_listed(slots[slot])})", value)
    return value


def _truth(top: _Table) -> _Truth:
    truth = top.table("truth")
    truth.known(TRUTH_KEYS)
    combine = truth.text("combine", "product")
    if combine not in ("product", "mean"):
        raise truth.wrong("combine", '"product" or "mean"', combine)
    # the segment's winner has factor 1 and the oracle's CTR is base_ctr: no other variant
    # may do better, or the winner and the oracle would both be wrong
    low, high = _loser_factor(truth)
    return _Truth(
        effect=top.flag("effect", True),
        low=low,
        high=high,
        upstream_factor=truth.number("upstream_factor", 0.0, 1.0, default=0.75),
        cta_penalty=truth.number("cta_penalty", 0.0, 1.0, default=0.6),
        combine=combine,
    )


def _loser_factor(truth: _Table) -> tuple[float, float]:
    value = truth.data.get("loser_factor", [0.3, 0.7])
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(_is_number(v) for v in value)
        or not 0 <= value[0] <= value[1] <= 1
    ):
        raise truth.wrong(
            "loser_factor", "a pair [low, high] of numbers with 0 <= low <= high <= 1", value
        )
    return float(value[0]), float(value[1])


def _conversion_slot(top: _Table, slots: Slots) -> str | None:
    if "conversion_slot" not in top.data:
        return None
    value = top.data["conversion_slot"]
    if not isinstance(value, str) or value not in slots:
        raise top.wrong(
            "conversion_slot", f"a slot of the campaign ({_listed(list(slots))})", value
        )
    return value


def _segments(
    top: _Table, slots: Slots, upstream: Mapping[str, str], truth: _Truth, rng: random.Random
) -> tuple[Segment, ...]:
    segments: list[Segment] = []
    for entry in top.tables("segments", "segments"):
        name = entry.text("name")
        entry = entry.at(f"[[segments]] {name}:")
        entry.known(SEGMENT_KEYS)
        if any(segment.name == name for segment in segments):
            raise entry.fail("a second segment of that name; segment names must be unique")
        segments.append(_segment(entry, name, slots, upstream, truth, rng))
    total = sum(segment.share for segment in segments)
    if abs(total - 1.0) > 1e-6:
        raise top.fail(f"[[segments]] shares must add up to 1, they add up to {total:g}")
    return tuple(segments)


def _segment(
    entry: _Table,
    name: str,
    slots: Slots,
    upstream: Mapping[str, str],
    truth: _Truth,
    rng: random.Random,
) -> Segment:
    winners = _winners(entry.table("winners"), slots)
    return Segment(
        name=name,
        share=entry.number("share", 0.0),
        signals=_signals(entry.table("signals")),
        # the report divides by each segment's oracle CTR, which is base_ctr
        base_ctr=entry.number("base_ctr", 0.0, 1.0, above=True),
        conversion=entry.number("conversion", 0.0, 1.0, default=0.0),
        winners=winners,
        factors=_factors(slots, winners, upstream, truth, rng),
        combine=truth.combine,
    )


def _winners(table: _Table, slots: Slots) -> dict[str, str]:
    for slot in table.data:
        if slot not in slots:
            raise table.fail(
                f"{table.prefix}{_key(slot)}: the campaign has no slot {slot} "
                f"(its slots: {_listed(list(slots))})"
            )
    return {slot: _variant(table, slot, slots) for slot in table.data}


def _signals(table: _Table) -> dict[str, SignalSpecValue]:
    return {name: _signal(table, name) for name in table.data}


def _signal(table: _Table, name: str) -> SignalSpecValue:
    value = table.data[name]
    if _is_scalar(value):
        return cast(SignalValue, value)
    if not isinstance(value, list) or not value or not all(_is_scalar(v) for v in value):
        raise table.wrong(name, SIGNAL_SPEC, value)
    # two integers are a range (draw_signals): one written backwards has nothing to draw from
    if len(value) == 2 and all(type(v) is int for v in value) and value[0] > value[1]:
        raise table.wrong(name, "an integer range [low, high] with low <= high", value)
    return list(value)


def _factors(
    slots: Slots,
    winners: Mapping[str, str],
    upstream: Mapping[str, str],
    truth: _Truth,
    rng: random.Random,
) -> dict[str, dict[str, float]]:
    """slot -> variant -> factor; draws from ``rng`` in slot and variant order (seeded)."""
    factors: dict[str, dict[str, float]] = {}
    for slot, variants in slots.items():
        factors[slot] = {}
        for variant in variants:
            if not truth.effect or variant == winners.get(slot):
                value = 1.0
            elif variant == upstream[slot]:
                value = truth.upstream_factor
            else:
                value = rng.uniform(truth.low, truth.high)
            factors[slot][variant] = value
    return factors


def _compiled_campaign(path: Path, policy: Path, name: str | None) -> Any:
    """The named campaign of the scenario's policy file, compiled by slotwise.dsl."""
    from slotwise.dsl.errors import PolicyError
    from slotwise.dsl.loader import load_policy_set
    from slotwise.plugins.registry import default_schema

    try:
        policy_set = load_policy_set([policy], default_schema())
    except PolicyError as exc:
        details = "; ".join(d.render().splitlines()[0] for d in exc.diagnostics)
        raise _fail(path, f"its policy {policy} does not load: {details}") from exc
    campaigns = {campaign.name: campaign for campaign in policy_set.campaigns}
    if name is None and len(campaigns) == 1:
        return next(iter(campaigns.values()))
    if name in campaigns:
        return campaigns[name]
    declared = _listed(sorted(campaigns)) or "none"
    if name is None:
        raise _fail(path, f"[campaign] name is missing: policy {policy} declares {declared}")
    raise _fail(path, f"[campaign] name: policy {policy} has no campaign {name!r} ({declared})")
