"""Prometheus metrics of the proxy, rendered as text at /_sw/metrics.

Plain counters and fixed-bucket histograms owned by the app (created in its lifespan, not at
import). The request path only adds numbers on one event loop thread, so no locks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

# A tuple of any length, not the inferred 16-float tuple: mypyc keeps a fixed-length tuple of
# floats unboxed, and its check of whether such a final name is set is wrong (reproduced in a
# one-module example): compiled, every Histogram() raised "value for final name ... not set"
LATENCY_BUCKETS: Final[tuple[float, ...]] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
)  # fmt: skip


class Counter:
    """A counter with one optional label."""

    def __init__(self, name: str, help_text: str, label: str | None = None) -> None:
        self.name = name
        self.help = help_text
        self.label = label
        self.values: dict[str, float] = {}

    def inc(self, label_value: str = "", amount: float = 1.0) -> None:
        self.values[label_value] = self.values.get(label_value, 0.0) + amount

    def get(self, label_value: str = "") -> float:
        return self.values.get(label_value, 0.0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        if not self.values and self.label is None:
            lines.append(f"{self.name} 0")
        for value, count in sorted(self.values.items()):
            labels = f'{{{self.label}="{_escape(value)}"}}' if self.label else ""
            lines.append(f"{self.name}{labels} {_number(count)}")
        return lines


class LabelledCounter:
    """A counter with several labels; values are keyed by their label values, in order."""

    def __init__(self, name: str, help_text: str, labels: tuple[str, ...]) -> None:
        self.name = name
        self.help = help_text
        self.labels = labels
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, *label_values: str, amount: float = 1.0) -> None:
        self.values[label_values] = self.values.get(label_values, 0.0) + amount

    def get(self, *label_values: str) -> float:
        return self.values.get(label_values, 0.0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        for values, count in sorted(self.values.items()):
            labels = ",".join(
                f'{label}="{_escape(value)}"'
                for label, value in zip(self.labels, values, strict=True)
            )
            lines.append(f"{self.name}{{{labels}}} {_number(count)}")
        return lines


class Histogram:
    """A histogram with fixed buckets (seconds)."""

    def __init__(self, name: str, help_text: str, buckets: Sequence[float] = LATENCY_BUCKETS):
        self.name = name
        self.help = help_text
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        # a scan, not bisect.bisect_left: latencies land in the first few of the 16 buckets,
        # and compiled code scans a float tuple faster than it calls into bisect (a module
        # attribute, a boxed float, a comparison call per step); the same index
        buckets = self.buckets
        index = 0
        last = len(buckets)
        while index < last and buckets[index] < seconds:
            index += 1
        self.counts[index] += 1
        self.sum += seconds
        self.count += 1

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        cumulative = 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            cumulative += count
            lines.append(f'{self.name}_bucket{{le="{bound:g}"}} {cumulative}')
        lines.append(f'{self.name}_bucket{{le="+Inf"}} {self.count}')
        lines.append(f"{self.name}_sum {self.sum:.6f}")
        lines.append(f"{self.name}_count {self.count}")
        return lines


class KpiCounters:
    """Section KPIs of recommended lists (counted by slotwise.proxy.recommend.kpis)."""

    def __init__(self) -> None:
        self.impressions = LabelledCounter(
            "slotwise_recs_impressions_total",
            "Items of recommended lists and re-ranks shown (their impression pixels), by list "
            "and position.",
            ("list", "position"),
        )
        self.clicks = LabelledCounter(
            "slotwise_recs_clicks_total",
            "Items of recommended lists and re-ranks clicked (their click pixels), by list and "
            "position.",
            ("list", "position"),
        )
        self.attributed = LabelledCounter(
            "slotwise_recs_attributed_total",
            "Add-to-carts and purchases sent with the decision id of a clicked list item, by "
            "list and event.",
            ("list", "event"),
        )
        self.value = LabelledCounter(
            "slotwise_recs_attributed_value_total",
            "Value of the purchases attributed to a list, by list and currency.",
            ("list", "currency"),
        )

    def all(self) -> tuple[LabelledCounter, ...]:
        return (self.impressions, self.clicks, self.attributed, self.value)


class ProxyMetrics:
    """Every metric the proxy exports."""

    def __init__(self) -> None:
        self.requests = Counter(
            "slotwise_requests_total", "Requests proxied, by response status class.", "status"
        )
        self.decisions = Counter(
            "slotwise_decisions_total", "Personalisation decisions, by campaign.", "campaign"
        )
        self.holdouts = Counter(
            "slotwise_holdout_total", "Decisions that served the control group.", "campaign"
        )
        self.fail_opens = Counter(
            "slotwise_fail_open_total",
            "Responses returned unchanged because personalisation failed, by cause.",
            "cause",
        )
        self.passthrough = Counter(
            "slotwise_passthrough_total",
            "Responses passed through without a personalisation attempt, by reason.",
            "reason",
        )
        self.campaigns_skipped = LabelledCounter(
            "slotwise_campaigns_skipped_total",
            "Campaigns that applied to an ad unit but were not decided there, by campaign and "
            "reason: missing_slot (a slot not in the unit), contested (an earlier "
            "personalisation took one of its locations), capped (the user reached its "
            "frequency cap), guardrail (reverted to generic).",
            ("campaign", "reason"),
        )
        self.signal_gathers = Counter(
            "slotwise_signal_gathers_total",
            "Requests a campaign could apply to, by when their signals were gathered: early "
            "(while the upstream answered), late (after it, a campaign applied), skipped.",
            "when",
        )
        self.upstream_errors = Counter(
            "slotwise_upstream_errors_total", "Failed upstream exchanges, by failure.", "failure"
        )
        self.refused = Counter(
            "slotwise_refused_total", "Requests refused by the proxy's own limits.", "reason"
        )
        self.decision_log_dropped = Counter(
            "slotwise_decision_log_dropped_total",
            "Decision records dropped because the log queue was full or the store failed.",
        )
        self.clicks = Counter("slotwise_clicks_total", "Signed click links redirected (302).")
        self.policy_reloads = Counter(
            "slotwise_policy_reloads_total", "Policy reload attempts, by result.", "result"
        )
        self.upstream_latency = Histogram(
            "slotwise_upstream_latency_seconds", "Time from request start to upstream headers."
        )
        self.decision_latency = Histogram(
            "slotwise_decision_latency_seconds",
            "Engine time per personalised response (parse, match, choose, rewrite).",
        )
        self.request_latency = Histogram(
            "slotwise_request_latency_seconds", "Time from request start to response start."
        )
        # section KPIs of recommended lists (slotwise.proxy.recommend.kpis)
        self.recs_kpis = KpiCounters()

    def render(self, extra: str = "") -> str:
        lines: list[str] = []
        metrics: tuple[Counter | LabelledCounter | Histogram, ...] = (
            self.requests,
            self.decisions,
            self.holdouts,
            self.fail_opens,
            self.passthrough,
            self.campaigns_skipped,
            self.signal_gathers,
            self.upstream_errors,
            self.refused,
            self.decision_log_dropped,
            self.clicks,
            self.policy_reloads,
            self.upstream_latency,
            self.decision_latency,
            self.request_latency,
            *self.recs_kpis.all(),
        )
        for metric in metrics:
            lines += metric.render()
        text = "\n".join(lines) + "\n"
        return text + extra if extra else text


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)
