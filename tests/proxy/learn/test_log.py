from __future__ import annotations

from pathlib import Path

import pytest

from slotwise.proxy.bandit import BanditDecision, BanditError, SlotChoice
from slotwise.proxy.learn.log import (
    DecisionRecord,
    RewardRecord,
    decision_record,
    decode,
    encode,
    read_log,
    signals_of,
    write_log,
)


def test_a_decision_round_trips_through_the_log(tmp_path: Path) -> None:
    decision = BanditDecision(
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
