"""``slotwise evaluate`` refuses each log that would give a silently wrong answer, naming the line
and the field, and warns loudly (naming the lines) about what it reads differently than a
reader might expect. The cases are data: a bad line, the exit code, what the message says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slotwise.proxy.cli import main

GOOD = (
    '{"type":"decision","id":"ok","ts":1,"campaign":"c","slots":[{"slot":"s","variant":"x",'
    '"probability":0.5,"candidates":["x","y"]}]}'
)


def _decision(slot: str, **extra: object) -> str:
    record = {"type": "decision", "id": "bad", "ts": 2, "campaign": "c", **extra}
    return json.dumps(record)[:-1] + f',"slots":[{slot}]}}'


# (the second line of the log, the code, fragments of the message)
ERRORS = {
    "no candidates (IPS was 80x too high)": (
        _decision('{"slot":"s","variant":"x","probability":0.5}'),
        "missing_candidates",
        [":2: $.slots[0].candidates: slot s served x but the record has no candidates"],
    ),
    "empty candidates": (
        _decision('{"slot":"s","variant":"x","probability":0.5,"candidates":[]}'),
        "missing_candidates",
        [":2: $.slots[0].candidates"],
    ),
    "variant outside its candidates": (
        _decision('{"slot":"s","variant":"z","probability":0.5,"candidates":["x","y"]}'),
        "bad_log_record",
        [":2: $.slots[0].variant: slot s served z, which is not among its candidates (x, y)"],
    ),
    "a forced choice below probability 1": (
        _decision('{"slot":"s","variant":"x","probability":0.5,"candidates":["x"]}'),
        "bad_log_record",
        [":2: $.slots[0].probability: slot s had one candidate, so its probability is 1"],
    ),
    "no probability": (
        _decision('{"slot":"s","variant":"x","candidates":["x","y"]}'),
        "bad_log_record",
        [":2:", "missing required field `probability`", "$.slots[0]"],
    ),
    "probability 0": (
        _decision('{"slot":"s","variant":"x","probability":0,"candidates":["x","y"]}'),
        "bad_log_record",
        [":2: slot s: probability 0.0 must be in (0, 1]"],
    ),
    "probability above 1": (
        _decision('{"slot":"s","variant":"x","probability":1.5,"candidates":["x","y"]}'),
        "bad_log_record",
        [":2: slot s: probability 1.5 must be in (0, 1]"],
    ),
    "probability infinite": (
        _decision('{"slot":"s","variant":"x","probability":1e999,"candidates":["x","y"]}'),
        "bad_log_record",
        [":2: Number out of range - at `$.slots[0].probability`"],
    ),
    "probability negative where nothing was served": (
        _decision('{"slot":"s","variant":null,"probability":-0.1,"candidates":[]}'),
        "bad_log_record",
        [":2: slot s: probability -0.1 must be in [0, 1]"],
    ),
    "probability not a number": (
        _decision('{"slot":"s","variant":"x","probability":"0.5","candidates":["x","y"]}'),
        "bad_log_record",
        [":2:", "Expected `float`, got `str`", "$.slots[0].probability"],
    ),
    "holdout without its share": (
        '{"type":"decision","id":"h","ts":2,"campaign":"c","holdout":true}',
        "bad_log_record",
        [":2: a holdout decision needs its holdout_share"],
    ),
    "holdout share above 1": (
        '{"type":"decision","id":"h","ts":2,"campaign":"c","holdout_share":2}',
        "bad_log_record",
        [":2: holdout_share 2.0 must be a share in [0, 1]"],
    ),
    "unknown outcome key (every reward was 0)": (
        _decision(
            '{"slot":"s","variant":"x","probability":0.5,"candidates":["x","y"]}',
            outcome={"click": 1},
        ),
        "unknown_reward_field",
        [":2: $.outcome.click: no such field", "clicks, conversions, revenue, discount_cost"],
    ),
    "unknown reward key": (
        '{"type":"reward","decision_id":"ok","ts":3,"event":"conversion","revenue":30}',
        "unknown_reward_field",
        [":2: $.revenue: no such field", "decision_id, ts, event, value"],
    ),
    "unknown reward event": (
        '{"type":"reward","decision_id":"ok","ts":3,"event":"purchase"}',
        "bad_log_record",
        [":2:", "Invalid enum value 'purchase'", "$.event"],
    ),
    "joined record with an unknown outcome key": (
        '{"type":"joined","decision":{"type":"decision","id":"j","ts":2,"campaign":"c"},'
        '"outcome":{"conversion":1},"reward":0,"rewarded":false}',
        "unknown_reward_field",
        [":2: $.outcome.conversion: no such field"],
    ),
    "no id": (
        '{"type":"decision","ts":2,"campaign":"c"}',
        "bad_log_record",
        [":2:", "missing required field `id`"],
    ),
    "no type": (
        '{"id":"x","ts":2,"campaign":"c"}',
        "bad_log_record",
        [":2:", "missing required field `type`"],
    ),
    "not JSON": ("{oops", "bad_log_record", [":2: not a JSON object"]),
}


@pytest.mark.parametrize("case", ERRORS.values(), ids=ERRORS.keys())
def test_each_bad_log_is_refused_naming_the_line_and_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: tuple[str, str, list[str]]
) -> None:
    line, code, says = case
    log = tmp_path / "log.jsonl"
    log.write_text(f"{GOOD}\n{line}\n")
    assert main(["evaluate", str(log)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"slotwise evaluate: {code}: {log}:2")
    for fragment in says:
        assert fragment in err


WARNINGS = {
    "a click with a value": (
        '{"type":"reward","decision_id":"ok","ts":3,"event":"click","value":2.5}',
        ["a click's value is not read", "put revenue in a revenue reward", "(1 line: ", ":2)"],
    ),
    "a decision field nobody reads": (
        _decision(
            '{"slot":"s","variant":"y","probability":0.5,"candidates":["x","y"],"propensity":1}',
            user="u-1",
        ),
        ["a field slotwise does not read, ignored", ":2 $.user, $.slots[0].propensity"],
    ),
    "a repeated decision id": (
        GOOD.replace('"ts":1', '"ts":2'),
        ["a decision id seen before: the repeat is ignored", ":2 repeats ", ":1)"],
    ),
}


@pytest.mark.parametrize("case", WARNINGS.values(), ids=WARNINGS.keys())
def test_what_is_read_differently_is_warned_about_with_its_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: tuple[str, list[str]]
) -> None:
    line, says = case
    log = tmp_path / "log.jsonl"
    log.write_text(f"{GOOD}\n{line}\n")
    assert main(["evaluate", str(log), "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert "slotwise evaluate: warning: " in err
    for fragment in says:
        assert fragment in err
    assert any(says[0] in warning for warning in json.loads(out)["warnings"])


def test_many_lines_of_one_kind_are_counted_and_the_first_five_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    click = '{"type":"reward","decision_id":"ok","ts":3,"event":"click","value":1}'
    log = tmp_path / "log.jsonl"
    log.write_text(GOOD + "\n" + "\n".join([click] * 8) + "\n")
    assert main(["evaluate", str(log)]) == 0
    err = capsys.readouterr().err
    assert f"(8 lines: {log}:2, {log}:3, {log}:4, {log}:5, {log}:6 and 3 more)" in err


def test_decisions_of_several_campaigns_need_one_chosen(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text(GOOD + "\n" + GOOD.replace('"c"', '"d"').replace('"ok"', '"ok2"') + "\n")
    assert main(["evaluate", str(log)]) == 2
    assert "choose a campaign with --campaign: the log has c, d" in capsys.readouterr().err
    assert main(["evaluate", str(log), "--campaign", "d", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["decisions"] == 1
