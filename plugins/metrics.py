"""Per-provider counters: fetches, cache hits, misses by cause, fallbacks by cause.

Counters are plain integers bumped on the event loop thread (asyncio runs one callback at a
time), so they need no lock; readers take :meth:`ProviderMetrics.snapshot`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# Why a provider's signals were absent for a request.
MISS_CAUSES: tuple[str, ...] = ("timeout", "error", "invalid", "no_consent")
# Distinct fallback causes kept per provider; later ones count as "other" (a provider naming
# causes after its input must not grow the metrics without bound).
MAX_FALLBACK_CAUSES = 32


class ProviderMetrics:
    """Counters of one provider. ``misses[cause]`` for every cause in :data:`MISS_CAUSES`.

    Each cause counts requests, so that ``misses[cause] / fetches`` is the share of requests
    affected. ``timeout``: the fetch did not finish within the deadline; ``error``: it raised;
    ``invalid``: it returned at least one value that is undeclared, of the wrong type or out
    of range, or an unusable history (those were dropped, the rest kept); ``no_consent``:
    personal provider skipped for lack of consent (not a fault, but rules needing its signals
    did not see them). ``invalid_values`` counts the dropped values themselves.

    ``fallbacks[cause]`` counts requests the provider answered, but from a fallback because
    its input was unusable (the consent provider meeting a malformed TC string decides
    contextual): the provider names the cause (:meth:`fallback`).
    """

    __slots__ = ("fetches", "ok", "cache_hits", "misses", "invalid_values", "seconds", "fallbacks")

    def __init__(self) -> None:
        self.fetches = 0
        self.ok = 0
        self.cache_hits = 0
        self.misses: dict[str, int] = dict.fromkeys(MISS_CAUSES, 0)
        self.invalid_values = 0
        self.seconds = 0.0
        self.fallbacks: dict[str, int] = {}

    def fallback(self, cause: str) -> None:
        """Count one request answered from a fallback, by ``cause``."""
        fallbacks = self.fallbacks
        if cause not in fallbacks and len(fallbacks) >= MAX_FALLBACK_CAUSES:
            cause = "other"
        fallbacks[cause] = fallbacks.get(cause, 0) + 1

    def snapshot(self) -> dict[str, int | float]:
        """A copy of the counters as one flat mapping (``misses_<cause>`` keys)."""
        flat: dict[str, int | float] = {
            "fetches": self.fetches,
            "ok": self.ok,
            "cache_hits": self.cache_hits,
            "invalid_values": self.invalid_values,
            "seconds": round(self.seconds, 6),
        }
        for cause, count in self.misses.items():
            flat[f"misses_{cause}"] = count
        for cause, count in sorted(self.fallbacks.items()):
            flat[f"fallbacks_{cause}"] = count
        return flat


def render_prometheus(
    metrics: Mapping[str, ProviderMetrics], prefix: str = "slotwise_signal_provider"
) -> str:
    """Counters in the Prometheus text format, one family per counter, labelled by provider."""
    lines: list[str] = []

    def family(name: str, help_text: str, rows: Iterable[tuple[str, float]]) -> None:
        lines.append(f"# HELP {prefix}_{name} {help_text}")
        lines.append(f"# TYPE {prefix}_{name} counter")
        lines.extend(f"{prefix}_{name}{{{labels}}} {value}" for labels, value in rows)

    names = sorted(metrics)
    family(
        "fetches_total",
        "Fetches started (cache hits included).",
        ((f'provider="{n}"', metrics[n].fetches) for n in names),
    )
    family(
        "cache_hits_total",
        "Fetches answered from the TTL cache.",
        ((f'provider="{n}"', metrics[n].cache_hits) for n in names),
    )
    family(
        "misses_total",
        "Requests for which some or all of the provider's signals were absent, by cause "
        "(invalid: values were dropped, see invalid_values_total).",
        (
            (f'provider="{n}",cause="{cause}"', metrics[n].misses[cause])
            for n in names
            for cause in MISS_CAUSES
        ),
    )
    family(
        "fallbacks_total",
        "Requests the provider answered from a fallback because its input was unusable, by "
        "cause (a malformed consent string: contextual).",
        (
            (f'provider="{n}",cause="{_label(cause)}"', count)
            for n in names
            for cause, count in sorted(metrics[n].fallbacks.items())
        ),
    )
    family(
        "invalid_values_total",
        "Values the provider returned that were dropped as invalid (undeclared, wrong type, "
        "out of range, unusable history).",
        ((f'provider="{n}"', metrics[n].invalid_values) for n in names),
    )
    family(
        "seconds_total",
        "Time spent waiting for the provider.",
        ((f'provider="{n}"', round(metrics[n].seconds, 6)) for n in names),
    )
    return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    """``value`` as a Prometheus label value (backslash, quote and newline escaped)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
