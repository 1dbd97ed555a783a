"""Synthetic decision and event logs for the report tests: known counts per arm and segment."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

T0 = 1_764_547_200.0  # 2025-12-01 00:00 UTC


@dataclass
class Truth:
    """What the generator wrote: (segment, arm) -> [decisions, clicked decisions]."""

    counts: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    decisions: list[dict[str, object]] = field(default_factory=list)
    events: list[dict[str, object]] = field(default_factory=list)

    def add(self, segment: str, arm: str, clicked: bool) -> None:
        for key in ((segment, arm), ("all", arm)):
            row = self.counts.setdefault(key, [0, 0])
            row[0] += 1
            row[1] += clicked


def make_logs(
    n: int = 6000,
    *,
    seed: int = 7,
    holdout: float = 0.2,
    rates: dict[str, float] | None = None,
    span: float = 6 * 3600.0,
) -> Truth:
    """``n`` decisions of campaign ``spring`` over ``span`` seconds; device.type mobile,
    desktop or tablet (rare: a small segment); personalised h2 clicks at ``rates["h2"]``."""
    rates = rates or {"h1": 0.05, "h2": 0.09, "control": 0.05}
    rng = random.Random(seed)
    truth = Truth()
    for i in range(n):
        ts = T0 + i * span / n
        device = "tablet" if i % 50 == 0 else rng.choice(["mobile", "desktop"])
        held = rng.random() < holdout
        headline = rng.choice(["h1", "h2"])
        slots = (
            []
            if held
            else [
                {"slot": "headline", "variant": headline, "probability": 0.5,
                 "candidates": ["h1", "h2"]},
                {"slot": "cta", "variant": "shop", "probability": 1.0, "candidates": ["shop"]},
            ]
        )  # fmt: skip
        decision_id = f"d-{i}"
        truth.decisions.append(
            {"type": "decision", "id": decision_id, "ts": ts, "campaign": "spring",
             "holdout": held, "holdout_share": holdout, "signals": {"device.type": device},
             "slots": slots, "eligible": {"headline": ["h1", "h2"], "cta": ["shop"]}}
        )  # fmt: skip
        clicked = rng.random() < rates["control" if held else headline]
        truth.add(device, "control" if held else "personalised", clicked)
        truth.events.append({"decision_id": decision_id, "ts": ts + 1, "type": "impression"})
        if clicked:
            truth.events.append({"decision_id": decision_id, "ts": ts + 3, "type": "click"})
    return truth


def write_files(truth: Truth, folder: Path) -> tuple[Path, Path]:
    """The exported form: decision lines, and reward lines for the clicks."""
    decisions, events = folder / "decisions.jsonl", folder / "events.jsonl"
    decisions.write_text("".join(json.dumps(d) + "\n" for d in truth.decisions))
    events.write_text(
        "".join(
            json.dumps(
                {"type": "reward", "decision_id": e["decision_id"], "ts": e["ts"], "event": "click"}
            )
            + "\n"
            for e in truth.events
            if e["type"] == "click"
        )  # fmt: skip
    )
    return decisions, events


def store_entries(truth: Truth) -> tuple[list[bytes], list[bytes]]:
    """The store's form: decision records, and event-collector envelopes."""
    decisions = [json.dumps(d).encode() for d in truth.decisions]
    events = [
        json.dumps(
            {"received": e["ts"], "consent": "personal",
             "event": {"type": e["type"], "id": f"{e['decision_id']}.{e['type']}",
                       "time": e["ts"], "decision_id": e["decision_id"]}}
        ).encode()
        for e in truth.events
    ]  # fmt: skip
    return decisions, events
