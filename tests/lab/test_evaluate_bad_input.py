"""``slotwise evaluate`` on bad input: refused with what and where, on stderr; no inf or nan."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from slotwise.proxy.cli import main
from slotwise.proxy.decision_log import DecisionRecord, SlotRecord
from slotwise.proxy.learn.log import RewardRecord, write_log

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "examples" / "scenarios" / "segment-winners.sw"


@pytest.fixture
def log(tmp_path: Path) -> Path:
    rng = random.Random(8)
    records: list[DecisionRecord | RewardRecord] = []
    for i in range(300):
        holdout = i % 10 == 0
        slots = (
            []
            if holdout
            else [
                SlotRecord("image", rng.choice(["image_1", "image_2"]), 0.5, ["image_1", "image_2"])
            ]
        )
        records.append(
            DecisionRecord(
                id=f"d{i}",
                ts=float(i),
                campaign="spring_sale",
                slots=slots,
                holdout=holdout,
                holdout_share=0.1,
            )
        )
        if rng.random() < 0.2:
            records.append(RewardRecord(f"d{i}", i + 1.0, "click"))
    path = tmp_path / "log.jsonl"
    write_log(path, records)
    return path


@pytest.fixture
def models(tmp_path: Path, log: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    directory = tmp_path / "models"
    argv = ["learn", "--policies", str(POLICY), "--log", str(log), "--models", str(directory)]
    assert main(argv) == 0
    capsys.readouterr()
    return directory


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--window", "0"], "--window must be a positive number"),
        (["--window", "-5"], "--window must be a positive number"),
        (["--window", "nan"], "--window must be a positive number"),
        (["--goal", "clicks=nan"], "finite number"),
        (["--goal", "clicks=inf"], "finite number"),
        (["--goal", ""], "a term is missing"),
        (["--candidate", "fixed:nosuch=x"], "no slot 'nosuch' in the log; its slots: image"),
        (["--candidate", "fixed:image=nosuch"], "its variants: image_1, image_2"),
        (["--candidate", "fixed:image"], "'image' is not slot=variant"),
        (["--campaign", "nosuch"], "no served decision of it; it has spring_sale"),
        (["--bootstrap", "-1"], "--bootstrap must be a number of resamples from 0 to 100000"),
    ],
)
def test_impossible_options_are_refused(
    log: Path, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    assert main(["evaluate", str(log), *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and says in err


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (
            '{"type":"decision","id":"a","ts":1,"campaign":"c","slots":[{"slot":"s",'
            '"variant":"x","probability":0,"candidates":["x","y"]}]}',
            ":1: slot s: probability 0.0 must be in (0, 1]",
        ),
        ('{"type":"reward","decision_id":"a","ts":1,"event":"click"}', "no served decisions"),
    ],
)
def test_log_errors_go_to_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, says: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    assert main(["evaluate", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and says in err


def test_a_model_the_log_cannot_support_is_warned_about_and_never_infinite(
    tmp_path: Path, log: Path, models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.sw"
    other.write_text(re.sub(r"\b(image|headline|cta)_(\d)", r"\1_x\2", POLICY.read_text()))
    argv = ["evaluate", str(log), "--candidate", "model", "--models", str(models)]
    argv += ["--policies", str(other), "--allow-training-log"]  # the model learned from log
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "chooses nothing the log can support" in err
    assert "n/a" in out and "inf" not in out and "nan" not in out
    assert main([*argv, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(c))
    assert data["candidates"][0]["snips"]["value"] is None


DAMAGE = {
    "version is a string": ("v000001.json", '"version": 1', '"version": "1"'),
    "unknown family": ("v000001.json", '"family": "squarecb"', '"family": "bogus"'),
    "explore_parameter": ("v000001.json", '"explore_parameter": 10.0', '"explore_parameter": "x"'),
    "CURRENT garbled": ("CURRENT", "1", "abc"),
}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_damaged_current_model_is_an_error_that_says_why(
    log: Path, models: Path, capsys: pytest.CaptureFixture[str], damage: tuple[str, str, str]
) -> None:
    path = models / "spring_sale" / damage[0]
    text = path.read_text()
    assert damage[1] in text
    path.write_text(text.replace(damage[1], damage[2], 1))
    argv = ["evaluate", str(log), "--candidate", "model", "--models", str(models)]
    assert main([*argv, "--policies", str(POLICY)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and str(path) in err and "internal error" not in err
