"""``--candidate probabilities:FILE``: a stochastic target policy, one distribution for every
decision (JSON) or one per decision (JSONL); checked, then evaluated like any candidate."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from slotwise.proxy.cli import main
from slotwise.proxy.decision_log import DecisionRecord, SlotRecord
from slotwise.proxy.learn.log import RewardRecord, write_log

CTR = {"a": 0.02, "b": 0.06, "c": 0.10}


@pytest.fixture
def log(tmp_path: Path) -> Path:
    rng = random.Random(11)
    records: list[DecisionRecord | RewardRecord] = []
    for i in range(6000):
        holdout = i % 10 == 0
        variant = rng.choice("abc")
        slots = [] if holdout else [SlotRecord("s", variant, 1 / 3, ("a", "b", "c"))]
        eligible = {"s": ("a", "b", "c")}
        records.append(
            DecisionRecord(
                id=f"d{i}",
                ts=float(i),
                campaign="c",
                holdout=holdout,
                holdout_share=0.1,
                slots=slots,
                eligible=eligible,
            )
        )
        if not holdout and rng.random() < CTR[variant]:
            records.append(RewardRecord(f"d{i}", i + 0.5, "click"))
    path = tmp_path / "log.jsonl"
    write_log(path, records)
    return path


def _run(
    log: Path, capsys: pytest.CaptureFixture[str], *candidates: str
) -> list[dict[str, object]]:
    argv = ["evaluate", str(log), "--format", "json"]
    for candidate in candidates:
        argv += ["--candidate", candidate]
    assert main(argv) == 0, capsys.readouterr().err
    rows: list[dict[str, object]] = json.loads(capsys.readouterr().out)["candidates"]
    return rows


def test_a_shared_distribution_reweighs_every_decision(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uniform = tmp_path / "uniform.json"
    uniform.write_text(json.dumps({"s": {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}}))
    best = tmp_path / "best.json"
    best.write_text(json.dumps({"s": {"c": 1.0}}))
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps({"s": {"a": 0.1, "b": 0.3, "c": 0.6}}))
    rows = _run(log, capsys, "uniform", f"probabilities:{uniform}", "fixed:s=c")
    rows += _run(log, capsys, f"probabilities:{best}", f"probabilities:{mixed}")
    by_name = {row["candidate"]: row for row in rows}
    for estimate in ("ips", "snips", "dr"):  # the same policy written two ways
        assert by_name[f"probabilities:{uniform}"][estimate] == pytest.approx(
            by_name["uniform"][estimate]
        )
        assert by_name[f"probabilities:{best}"][estimate] == pytest.approx(
            by_name["fixed:s=c"][estimate]
        )
    true_value = 0.9 * (0.1 * CTR["a"] + 0.3 * CTR["b"] + 0.6 * CTR["c"])
    ips = by_name[f"probabilities:{mixed}"]["ips"]
    assert isinstance(ips, dict) and ips["low"] <= true_value <= ips["high"]


def test_a_per_decision_file_gives_each_decision_its_own_distribution(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = []
    for record in log.read_text().splitlines():
        data = json.loads(record)
        if data["type"] == "decision":
            odd = int(data["id"][1:]) % 2
            dist = {"c": 1.0} if odd else {"a": 0.5, "b": 0.5}
            lines.append(json.dumps({"id": data["id"], "slots": {"s": dist}}))
    per_decision = tmp_path / "target.jsonl"
    per_decision.write_text("\n".join(reversed(lines)) + "\n")  # order does not matter
    (row,) = _run(log, capsys, f"probabilities:{per_decision}")
    true_value = 0.9 * (0.5 * CTR["c"] + 0.5 * (CTR["a"] + CTR["b"]) / 2)
    snips = row["snips"]
    assert isinstance(snips, dict) and snips["low"] <= true_value <= snips["high"]


BAD_FILES = {
    "sum above 1": (
        '{"s": {"a": 0.5, "b": 0.6}}',
        "slot s: the probabilities sum to 1.1, not 1 (within 1e-09)",
    ),
    "sum below 1 by more than 1e-9": (
        '{"s": {"a": 0.5, "b": 0.499999998}}',
        "slot s: the probabilities sum to 0.999999998, not 1",
    ),
    "a negative probability": ('{"s": {"a": 1.5, "b": -0.5}}', "the probability of a is 1.5"),
    "a probability that is no number": ('{"s": {"a": "1"}}', "the probability of a is '1'"),
    "a slot that is no distribution": ('{"s": 1}', "slot s: expected an object of variant"),
    "a slot of the log missing": (
        '{"t": {"a": 1}}',
        "log.jsonl:1, decision d0); the file has t",
    ),
    "no candidate of the log": (
        '{"s": {"z": 1}}',
        "slot s gives no probability to any candidate of decision d0 (",
    ),
    "JSONL: a decision missing": (
        '{"id": "d1", "slots": {"s": {"a": 1}}}\n',
        "no line for decision d0 (",
    ),
    "JSONL: a sum off by 1e-6 names the slot and the line": (
        '{"id": "d0", "slots": {"s": {"a": 1}}}\n{"id": "d1", "slots": {"s": {"a": 0.999999}}}',
        "target.json:2: slot s: the probabilities sum to 0.999999, not 1",
    ),
    "JSONL: a variant outside the choice set": (
        '{"id": "d0", "slots": {"s": {"a": 0.5, "zz": 0.5}}}',
        "target.json:1: slot s gives probability to zz, outside the choice set of decision d0",
    ),
    "JSONL: a decision twice": (
        '{"id": "d0", "slots": {"s": {"a": 1}}}\n{"id": "d0", "slots": {"s": {"b": 1}}}',
        "target.json:2: decision d0 already has a line (",
    ),
    "JSONL: an unknown field": (
        '{"id": "d0", "slot": {"s": {"a": 1}}}\n{"id": "d1", "slots": {}}',
        "target.json:1: unknown field 'slot'",
    ),
    "JSONL: a line that is not JSON": (
        '{"id": "d0", "slots": {"s": {"a": 1}}}\n{nope',
        "target.json:2: not JSON",
    ),
    "empty": ("", "no distribution in the file"),
}


@pytest.mark.parametrize("case", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_bad_probabilities_file_is_refused_naming_the_slot_and_line(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: tuple[str, str]
) -> None:
    content, says = case
    target = tmp_path / "target.json"
    target.write_text(content)
    assert main(["evaluate", str(log), "--candidate", f"probabilities:{target}"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "bad_target_policy" in err and says in err, err


def test_a_missing_file_is_bad_usage(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["evaluate", str(log), "--candidate", f"probabilities:{tmp_path / 'none.json'}"]
    assert main(argv) == 2
    assert "unreadable_target_policy: --candidate probabilities:" in capsys.readouterr().err
    assert main(["evaluate", str(log), "--candidate", "probabilities:"]) == 2
    assert "name the file" in capsys.readouterr().err


def test_a_distribution_cut_by_the_rules_is_renormalised_and_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "log.jsonl"
    narrow = SlotRecord("s", "a", 0.5, ("a", "b"))  # the rules left two of three
    write_log(
        log, [DecisionRecord(id=f"d{i}", ts=i, campaign="c", slots=[narrow]) for i in range(9)]
    )
    target = tmp_path / "target.json"
    target.write_text('{"s": {"a": 0.25, "b": 0.25, "c": 0.5}}')
    argv = ["evaluate", str(log), "--candidate", f"probabilities:{target}", "--format", "json"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "on 9 decisions the rules left only some of the file's variants" in err
    (row,) = json.loads(out)["candidates"]
    assert row["mean_weight"] == pytest.approx(1.0)  # 0.25 / 0.5 renormalised to 0.5 / 0.5
