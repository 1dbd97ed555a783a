from __future__ import annotations

from pathlib import Path

import pytest

from slotwise.proxy.bandit import BanditError
from slotwise.proxy.choice import Choice, SlotChoice
from slotwise.proxy.decision_log import DecisionRecord, decision_record, signals_of
from slotwise.proxy.learn.log import RewardRecord, decode, encode, read_log, write_log


def test_a_decision_round_trips_through_the_log(tmp_path: Path) -> None:
    decision = Choice(
        "spring",
        "v3",
        False,
        0.1,
        True,
        (SlotChoice("headline", "h2", 0.95, ("h1", "h2")),),
        {"device.type": "mobile", "user.segments": ("vip",)},
    )
    record = decision_record(decision, "d-1", 10.0, "abc")
    assert record.propensity == pytest.approx(0.9 * 0.95)
    path = tmp_path / "log.jsonl"
    write_log(path, [record, RewardRecord("d-1", 11.0, "click")])
    first, second = list(read_log(path))
    assert first == record and isinstance(second, RewardRecord)
    assert isinstance(first, DecisionRecord)
    assert signals_of(first)["user.segments"] == ("vip",)
    assert b'"type":"decision"' in encode(record)


def test_bad_lines_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text('{"type":"reward","decision_id":"a","ts":1,"event":"click"}\n{"type":"x"}\n')
    with pytest.raises(BanditError) as error:
        list(read_log(path))
    assert error.value.code == "bad_log_record" and ":2:" in error.value.message
    with pytest.raises(BanditError):
        decode('{"type":"reward","decision_id":"a","ts":1,"event":"like"}')
    with pytest.raises(BanditError) as error:
        list(read_log(tmp_path / "missing.jsonl"))
    assert error.value.code == "unreadable_log"


DECISION = (
    '{"type":"decision","id":"d","ts":1,"campaign":"c","holdout":%s,"holdout_share":%s,'
    '"slots":[{"slot":"s","variant":%s,"probability":%s,"candidates":["a","b"]}]}'
)


@pytest.mark.parametrize(
    ("holdout", "share", "variant", "probability", "says"),
    [
        ("false", "0", '"a"', "0", "probability 0.0 must be in (0, 1]"),
        ("false", "0", '"a"', "-0.5", "probability -0.5"),
        ("false", "0", '"a"', "1.5", "probability 1.5"),
        ("false", "0", "null", "-1", "must be in [0, 1]"),
        ("false", "1.5", '"a"', "0.5", "holdout_share 1.5"),
        ("true", "0", "null", "1", "holdout decision needs its holdout_share"),
    ],
)
def test_probabilities_that_are_no_probability_are_bad_records(
    tmp_path: Path, holdout: str, share: str, variant: str, probability: str, says: str
) -> None:
    path = tmp_path / "log.jsonl"
    good = DECISION % ("false", "0.1", '"a"', "0.5")
    path.write_text(good + "\n" + DECISION % (holdout, share, variant, probability) + "\n")
    with pytest.raises(BanditError) as error:
        list(read_log(path))
    assert error.value.code == "bad_log_record"
    assert f"{path}:2:" in error.value.message and says in error.value.message
    joined = '{"type":"joined","decision":%s,"outcome":{},"reward":0,"rewarded":false}'
    with pytest.raises(BanditError):
        decode(joined % (DECISION % (holdout, share, variant, probability)))


def test_a_byte_order_mark_at_the_start_of_the_file_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    line = DECISION % ("false", "0.1", '"a"', "0.5")
    path.write_bytes(b"\xef\xbb\xbf" + line.encode() + b"\n" + line.encode() + b"\n")
    assert len(list(read_log(path))) == 2
    path.write_bytes(line.encode() + b"\n\xef\xbb\xbf" + line.encode() + b"\n")
    with pytest.raises(BanditError) as error:
        list(read_log(path))  # only the file's start may carry one
    assert ":2:" in error.value.message
