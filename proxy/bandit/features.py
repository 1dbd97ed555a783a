"""Signals to bandit features: which namespace a signal feeds, how a value becomes a feature.

The bandit sees five shared namespaces, one per kind of signal, and one namespace for the
variant being scored:

    user     personal signals: user.*, cart.* and any signal the schema marks ``personal``
    context  the page and the ad: request.*, ad.* and signals of plugin namespaces
    device   device.*
    geo      geo.*
    time     time.*
    variant  the variant's name and attributes (``workspace.action_features``)
    slot     the slot's name (the same for all of a slot's candidates)

VW takes the first letter of a namespace name as its index (u, c, d, g, t, v, s); interactions
are written with those letters. Consent signals choose what is used and are never features.

Numbers become categorical buckets, not raw values: a linear model over a raw age cannot say
"18 to 24 prefers headline B", while one weight per age bucket can. Each number gives two
features: a fine one (small integers exact, larger magnitudes in quarter-octaves: 24-27, 28-31,
32-39, ...) and a coarse one (its octave: 16-31, 32-63, ...). The coarse feature lets what is
learned about a 21-year-old carry over to a 19-year-old while data is scarce; the fine one
sharpens the model as data grows. The number of distinct features stays small whatever the
range.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from slotwise.types import Signals, SignalSchema, SignalValue

# Final: compiled, a name read on every request is a constant, not a module dict lookup
USER: Final = "user"
CONTEXT: Final = "context"
DEVICE: Final = "device"
GEO: Final = "geo"
TIME: Final = "time"
VARIANT: Final = "variant"
SLOT: Final = "slot"

SHARED_NAMESPACES: tuple[str, ...] = (USER, CONTEXT, DEVICE, GEO, TIME)
CONTEXTUAL_NAMESPACES: tuple[str, ...] = (CONTEXT, DEVICE, GEO, TIME)

_FIXED_NAMESPACE = {"device": DEVICE, "geo": GEO, "time": TIME, "request": CONTEXT, "ad": CONTEXT}
_PERSONAL_PREFIXES = frozenset({"user", "cart"})
_NOT_FEATURES = frozenset({"consent"})
_EXACT_INT_LIMIT = 24

SharedFeatures = dict[str, list[str]]


def bucket(value: float) -> str:
    """A stable categorical label for a number (exact when small, quarter-octaves beyond)."""
    if math.isnan(value) or math.isinf(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    sign = "-" if value < 0 else ""
    magnitude = abs(value)
    if magnitude < _EXACT_INT_LIMIT:
        whole = int(magnitude)
        if whole == magnitude or magnitude < 1:
            return f"{sign}{whole}"
        return f"{sign}{whole}+"
    whole = int(magnitude)
    high_bit = whole.bit_length() - 1
    step = 1 << max(high_bit - 2, 0)
    low = whole - whole % step
    return f"{sign}{low}..{low + step - 1}"


def octave(value: float) -> str:
    """A coarse label for a number: its power-of-two range (16..31, 32..63, ...)."""
    if math.isnan(value) or math.isinf(value):
        return bucket(value)
    sign = "-" if value < 0 else ""
    whole = int(abs(value))
    if whole < 2:
        return f"{sign}{whole}"
    low = 1 << (whole.bit_length() - 1)
    return f"{sign}{low}..{2 * low - 1}"


def _value_features(name: str, value: SignalValue) -> list[str]:
    if isinstance(value, bool):
        return [f"{name}={'true' if value else 'false'}"]
    if isinstance(value, int | float):
        return [f"{name}~{bucket(float(value))}", f"{name}~~{octave(float(value))}"]
    if isinstance(value, tuple):
        return [f"{name}={item}" for item in value]
    return [f"{name}={value}"]


_CACHE_LIMIT: Final = 65_536
_UNKNOWN: Final = object()


@dataclass(frozen=True, slots=True)
class FeatureMap:
    """Decides, per signal, its namespace and whether it needs the user's consent.

    With a schema, ``SignalSpec.personal`` decides; without one (tests, logs from other systems)
    the ``user.`` and ``cart.`` namespaces are personal. Signal values repeat across requests
    (``device.type=mobile``), so each (signal, value)'s namespace and features are computed once
    and memoised: a pure cache, bounded (cleared when full), safe without a lock because a
    dict read or write is atomic under the GIL and any racing writer stores the same value.
    """

    schema: SignalSchema | None = None
    _cache: dict[tuple[str, type, SignalValue], tuple[str | None, tuple[str, ...]]] = field(
        default_factory=dict, compare=False, repr=False
    )
    _namespaces: dict[str, str | None] = field(default_factory=dict, compare=False, repr=False)

    def namespace(self, signal: str) -> str | None:
        known = self._namespaces.get(signal, _UNKNOWN)
        if known is not _UNKNOWN:
            return known  # type: ignore[return-value]
        namespace = self._namespace(signal)
        if len(self._namespaces) >= _CACHE_LIMIT:
            self._namespaces.clear()
        self._namespaces[signal] = namespace
        return namespace

    def _namespace(self, signal: str) -> str | None:
        prefix = signal.split(".", 1)[0]
        if prefix in _NOT_FEATURES:
            return None
        spec = self.schema.get(signal) if self.schema is not None else None
        if prefix in _PERSONAL_PREFIXES or (spec is not None and spec.personal):
            return USER
        return _FIXED_NAMESPACE.get(prefix, CONTEXT)

    def _features(self, name: str, value: SignalValue) -> tuple[str | None, tuple[str, ...]]:
        key = (name, type(value), value)
        known = self._cache.get(key)
        if known is None:
            namespace = self.namespace(name)
            known = (namespace, tuple(_value_features(name, value)) if namespace else ())
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = known
        return known

    def shared(self, signals: Signals, *, personal: bool) -> SharedFeatures:
        """The shared-context features of one request.

        ``personal=False`` (no consent, or a new user we know nothing about) drops the user
        namespace, so the decision rests on the contextual part of the model only.
        """
        features: SharedFeatures = {}
        memo = self._cache
        for name, value in signals.items():
            known = memo.get((name, type(value), value))
            namespace, values = known if known is not None else self._features(name, value)
            if namespace is None or (namespace == USER and not personal):
                continue
            listed = features.get(namespace)
            if listed is None:
                features[namespace] = list(values)
            else:
                listed.extend(values)
        return features

    def split(
        self, signals: Signals, *, personal: bool
    ) -> tuple[dict[str, SignalValue], SharedFeatures]:
        """``usable_signals`` and ``shared`` in one pass (the request path asks the first, and
        ``shared`` of its answer only when VW predicts: CampaignModel.decide)."""
        kept: dict[str, SignalValue] = {}
        features: SharedFeatures = {}
        memo = self._cache
        for name, value in signals.items():
            known = memo.get((name, type(value), value))
            namespace, values = known if known is not None else self._features(name, value)
            if namespace is None or (namespace == USER and not personal):
                continue
            kept[name] = value
            listed = features.get(namespace)
            if listed is None:
                features[namespace] = list(values)
            else:
                listed.extend(values)
        return kept, features

    def usable_signals(self, signals: Signals, *, personal: bool) -> dict[str, SignalValue]:
        """The signals a decision may use and log: without consent, nothing personal is kept.

        Per signal a lookup by name only (its namespace): the request path asks this first
        and ``shared`` of these only when VW is to predict (most decisions need no prediction:
        one candidate, or a distribution the model remembers). A copy less the few signals
        dropped (consent's, and without ``personal`` the user's): most signals are kept, and
        one copy costs less than a dict grown key by key."""
        kept = dict(signals)
        known = self._namespaces
        for name in signals:
            namespace = known.get(name, _UNKNOWN)
            if namespace is _UNKNOWN:
                namespace = self.namespace(name)
            if namespace is None or (not personal and namespace == USER):
                del kept[name]
        return kept


def uses_personal_features(signals: Mapping[str, SignalValue]) -> bool:
    """Whether personal features may be used: the user consented and is not new.

    A new user has no history worth a weight, so they get the contextual model, like
    no-consent traffic. ``consent.level`` absent counts as contextual: the safe default.
    """
    if signals.get("consent.level") != "personal":
        return False
    return signals.get("user.is_new") is not True
