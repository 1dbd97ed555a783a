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

import random
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slotwise.plugins.schema import Context, Signals, SignalValue
from slotwise.proxy.bandit.campaign import (
    BanditCampaign,
    BanditSlot,
    BanditVariant,
    from_compiled,
)
from slotwise.proxy.bandit.engine import SlotRules
from slotwise.proxy.bandit.errors import BanditError
from slotwise.proxy.bandit.exploration import explore_from_policy
from slotwise.proxy.learn.reward import Goal

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


def _slots(path: Path, raw: Sequence[Mapping[str, Any]]) -> tuple[BanditSlot, ...]:
    slots = []
    for entry in raw:
        name = entry.get("name")
        variants = entry.get("variants")
        if not isinstance(name, str) or variants is None:
            raise _fail(path, "every [[campaign.slots]] needs a name and variants")
        if isinstance(variants, int):
            names = [f"{name}_{i}" for i in range(variants)]
        elif isinstance(variants, list) and all(isinstance(v, str) for v in variants):
            names = list(variants)
        else:
            raise _fail(path, f"slot {name}: variants is a count or a list of names")
        if len(set(names)) != len(names) or len(names) < 2:
            raise _fail(path, f"slot {name}: needs at least two distinct variants")
        slots.append(BanditSlot(name, tuple(BanditVariant(n) for n in names)))
    return tuple(slots)


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file; a BanditError names the file and the problem."""
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise BanditError("unreadable_scenario", f"{path}: cannot read ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise _fail(path, f"not valid TOML ({exc})") from exc
    try:
        return _build(path, data)
    except (KeyError, TypeError, ValueError) as exc:
        raise _fail(path, f"missing or wrong-typed setting ({exc})") from exc


def _build(path: Path, data: Mapping[str, Any]) -> Scenario:
    seed = int(data.get("seed", 7))
    raw_campaign = data["campaign"]
    compiled = None
    if "policy" in data:
        compiled = _compiled_campaign(path, path.parent / str(data["policy"]), raw_campaign)
        campaign = from_compiled(compiled)
    else:
        explore = raw_campaign.get("explore", {})
        campaign = BanditCampaign(
            name=str(raw_campaign.get("name", "simulated")),
            slots=_slots(path, raw_campaign["slots"]),
            explore=explore_from_policy(explore.get("kind"), explore.get("parameter")),
            holdout=float(raw_campaign.get("holdout", 0.1)),
            goal=Goal({k: float(v) for k, v in raw_campaign.get("goal", {"clicks": 1}).items()}),
        )
    slot_names = [slot.name for slot in campaign.slots]
    upstream = {str(k): str(v) for k, v in data["upstream"].items()}
    if sorted(upstream) != sorted(slot_names):
        raise _fail(path, f"[upstream] must name one variant for each slot: {slot_names}")
    effect = bool(data.get("effect", True))
    model = data.get("truth", {})
    low, high = (float(x) for x in model.get("loser_factor", [0.3, 0.7]))
    upstream_factor = float(model.get("upstream_factor", 0.75))
    combine = str(model.get("combine", "product"))
    if combine not in ("product", "mean"):
        raise _fail(path, f'[truth] combine is "product" or "mean", not {combine!r}')
    rng = random.Random(seed)
    segments = []
    for raw in data["segments"]:
        winners = {str(k): str(v) for k, v in raw.get("winners", {}).items()}
        for slot_name, variant_name in (*winners.items(), *upstream.items()):
            if slot_name not in slot_names or variant_name not in {
                v.name for v in campaign.slot(slot_name).variants
            }:
                raise _fail(
                    path, f"segment {raw.get('name')}: no variant {variant_name} in {slot_name}"
                )
        factors: dict[str, dict[str, float]] = {}
        for slot in campaign.slots:
            factors[slot.name] = {}
            for variant in slot.variants:
                if not effect or variant.name == winners.get(slot.name):
                    value = 1.0
                elif variant.name == upstream[slot.name]:
                    value = upstream_factor
                else:
                    value = rng.uniform(low, high)
                factors[slot.name][variant.name] = value
        segments.append(
            Segment(
                name=str(raw["name"]),
                share=float(raw["share"]),
                signals=dict(raw.get("signals", {})),
                base_ctr=float(raw["base_ctr"]),
                conversion=float(raw.get("conversion", 0.0)),
                winners=winners,
                factors=factors,
                combine=combine,
            )
        )
    if not segments:
        raise _fail(path, "needs at least one [[segments]] entry")
    total = sum(s.share for s in segments)
    if abs(total - 1.0) > 1e-6:
        raise _fail(path, f"segment shares must add up to 1, they add up to {total:g}")
    return Scenario(
        name=str(data.get("name", path.stem)),
        description=str(data.get("description", "")),
        seed=seed,
        impressions=int(data.get("impressions", 50_000)),
        report_every=int(data.get("report_every", 1_000)),
        publish_every=int(data.get("publish_every", 1_000)),
        window=float(data.get("window", 30.0)),
        users=int(data.get("users", 20_000)),
        consent_share=float(data.get("consent_share", 1.0)),
        campaign=campaign,
        upstream=upstream,
        conversion_slot=data.get("conversion_slot"),
        cta_penalty=float(model.get("cta_penalty", 0.6)),
        segments=tuple(segments),
        effect=effect,
        compiled=compiled,
    )


def _compiled_campaign(path: Path, policy: Path, raw_campaign: Mapping[str, Any]) -> Any:
    """The named campaign of the scenario's policy file, compiled by slotwise.dsl."""
    from slotwise.dsl.errors import PolicyError
    from slotwise.dsl.loader import load_policy_set
    from slotwise.dsl.schema_file import default_schema

    try:
        policy_set = load_policy_set([policy], default_schema())
    except PolicyError as exc:
        details = "; ".join(d.render().splitlines()[0] for d in exc.diagnostics)
        raise _fail(path, f"its policy {policy} does not load: {details}") from exc
    name = raw_campaign.get("name")
    if name is None and len(policy_set.campaigns) == 1:
        return policy_set.campaigns[0]
    for campaign in policy_set.campaigns:
        if campaign.name == name:
            return campaign
    raise _fail(path, f"policy {policy} has no campaign {name!r}")
