"""What ``slotwise evaluate`` prints: enough digits for rare rewards, every figure in the JSON
(the schema docs/learning.md documents), and the same numbers in both."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from slotwise.proxy.cli import main
from slotwise.proxy.decision_log import DecisionRecord, SlotRecord
from slotwise.proxy.learn.log import RewardRecord, write_log


@pytest.fixture
def rare(tmp_path: Path) -> Path:
    """Clicks on 0.1-0.5% of decisions: rates a 3-decimal format shows as 0.001 to 0.005."""
    rng = random.Random(21)
    records: list[DecisionRecord | RewardRecord] = []
    for i in range(4000):
        holdout = i % 10 == 0
        variant = rng.choice(["a", "b"])
        slots = [] if holdout else [SlotRecord("s", variant, 0.5, ("a", "b"))]
        records.append(
            DecisionRecord(
                id=f"d{i}",
                ts=float(i),
                campaign="c",
                holdout=holdout,
                holdout_share=0.1,
                slots=slots,
                eligible={"s": ("a", "b")},
            )
        )
        if rng.random() < (0.005 if variant == "b" else 0.001):
            records.append(RewardRecord(f"d{i}", i + 1.0, "click"))
    path = tmp_path / "log.jsonl"
    write_log(path, records)
    return path


def test_rates_below_one_percent_keep_four_significant_digits(
    rare: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["evaluate", str(rare), "--candidate", "fixed:s=b", "--candidate", "upstream"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert main([*argv, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    logged = data["logged"]["value"]
    assert 0 < logged < 0.01
    row = next(line for line in text.splitlines() if line.startswith("logging policy "))
    value = re.findall(r"0\.\d+", row)[0]
    assert value == f"{logged:.6f}" and len(value.lstrip("0.")) >= 4  # 0.003000, not 0.003
    snips = data["candidates"][0]["snips"]["value"]
    assert f"{snips:.6f}" in text


def test_the_json_carries_every_figure(rare: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["evaluate", str(rare), "--candidate", "fixed:s=b", "--bootstrap", "50"]
    assert main([*argv, "--seed", "3", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {
        "campaign", "logs", "decisions", "late_rewards", "unmatched_rewards",
        "duplicate_decisions", "window", "goal", "bootstrap", "logged", "candidates",
        "training_log", "warnings",
    }  # fmt: skip
    assert data["bootstrap"] == {"replicates": 50, "seed": 3}
    assert set(data["logged"]) == {"value", "low", "high", "interval", "rewarded", "bootstrap"}
    (candidate,) = data["candidates"]
    assert set(candidate) == {
        "candidate", "decisions", "ips", "snips", "dr", "intervals", "bootstrap",
        "mean_weight", "max_weight", "support", "ess", "slots",
    }  # fmt: skip
    assert candidate["intervals"] == {"ips": "normal", "snips": "wilson", "dr": "normal"}
    assert set(candidate["bootstrap"]) == {"ips", "snips", "dr"}
    (slot,) = candidate["slots"]
    assert set(slot) == {
        "slot", "decisions", "ips", "snips", "intervals", "ess", "support", "max_weight", "logged",
    }  # fmt: skip
    assert slot["decisions"] == 3600 and slot["logged"]["interval"] == "wilson"
    # the same seed, the same resamples; another seed, others
    assert main([*argv, "--seed", "3", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == data
    assert main([*argv, "--seed", "4", "--format", "json"]) == 0
    assert (
        json.loads(capsys.readouterr().out)["candidates"][0]["bootstrap"]
        != (candidate["bootstrap"])
    )
