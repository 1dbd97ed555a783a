"""The request path against a recording of an older one: same requests, same answers.

tests/data/differential.jsonl.gz holds 2,000 requests of the example traffic (the demo's
audience segments against the example ad server with examples/adserver/policies/demo.sw; the
shop's pages, the published IAB examples and pass-throughs with policies/), the upstream's
answer to each, and what the request path of the commit it was recorded from (8865949, main
before issue 14's pipeline of personalisers) answered and logged. The recorder,
scripts/differential_record.py, says how the traffic is built and how to record again.

Each phase is replayed here through this tree's proxy with the same seeded rule chooser, one
request at a time, and every answer (status, headers, body) and every decision record must be
the same, decision ids, click signatures, times, clock signals and the policy version aside
(tests/proxy/differential.py normalises them on both sides).

What the traffic does not exercise, on purpose: the two behaviours issue 14 changed. A
campaign missing a slot was a fail-open of the whole response and is now skipped (the
recorder refuses traffic with one), and several campaigns may now apply to one ad unit or
document (no response of the traffic has two whose ``applies when`` hold). Both are tested
in tests/proxy/personalisers/test_campaigns.py and tests/proxy/test_decide.py.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest

from tests.conftest import TEST_DATA
from tests.proxy.differential import drive

RECORDING = TEST_DATA / "differential.jsonl.gz"


def _phases() -> list[dict[str, Any]]:
    with gzip.open(RECORDING, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


PHASES = _phases()


def test_the_recording_is_the_example_traffic() -> None:
    assert [p["phase"]["name"] for p in PHASES] == ["demo", "shop"]
    assert sum(len(p["phase"]["requests"]) for p in PHASES) == 2000
    records = [r for p in PHASES for a in p["expected"]["answers"] for r in a["records"]]
    assert len(records) > 1500 and {r["record"]["fail_open"] for r in records} == {None}
    assert {r["record"]["campaign"] for r in records} >= {
        "spring_sale",
        "native_outdoor",
        "video_preroll",
        "home_hero",
    }
    assert any(r["record"]["holdout"] for r in records)


@pytest.mark.parametrize("recorded", PHASES, ids=lambda p: p["phase"]["name"])
async def test_the_same_requests_get_the_same_answers_and_records(recorded: Any) -> None:
    phase, expected = recorded["phase"], recorded["expected"]
    replayed = await drive(phase)
    for index, (old, new) in enumerate(zip(expected["answers"], replayed["answers"], strict=True)):
        request = phase["requests"][index]
        where = f"{phase['name']} request {index}: {request['method']} {request['path']}"
        assert new["status"] == old["status"], where
        assert new["headers"] == old["headers"], where
        assert new["body"] == old["body"], where
        assert new["records"] == old["records"], where
    assert replayed["counters"] == expected["counters"]
