"""A restarted learner carries on with a campaign's guardrail statistics: two `slotwise learn
--once` runs over two batches of 4,000 decisions, where the campaign asks for 6,000 before its
guardrail may act; only the second run, counting both batches, reverts it. Re-enabling it
forgets the saved statistics."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from pathlib import Path

from slotwise.proxy.guardrail import state
from slotwise.proxy.state import LogRecord, open_store
from tests.conftest import REPO

POLICY = """policy "restart" version 1

campaign harmful {
  slot s at "$.a" { variant v1 "1"  variant v2 "2" }
  holdout 50%
  guardrail min 6000
}
"""


async def _batch(url: str, first: int, n: int = 4000) -> None:
    rng = random.Random(first)
    now = time.time()
    decisions, events = [], []
    for i in range(first, first + n):
        ts = now - 600 + (i - first) * 0.1
        held = i % 2 == 0
        decision_id = f"harmful-{i}"
        slots = [] if held else [
            {"slot": "s", "variant": "v1", "probability": 0.5, "candidates": ["v1", "v2"]}
        ]  # fmt: skip
        decisions.append(
            {"type": "decision", "id": decision_id, "ts": ts, "campaign": "harmful",
             "holdout": held, "holdout_share": 0.5, "slots": slots,
             "eligible": {"s": ["v1", "v2"]}}
        )  # fmt: skip
        if rng.random() < (0.4 if held else 0.2):
            events.append(
                {"received": ts + 1, "consent": "contextual",
                 "event": {"type": "click", "id": f"{decision_id}.click", "time": ts + 0.5,
                           "decision_id": decision_id}}
            )  # fmt: skip
    async with open_store(url) as store:
        for log, items in (("decisions", decisions), ("events", events)):
            records = [LogRecord(json.dumps(item).encode()) for item in items]
            for start in range(0, len(records), 1000):
                await store.log_append(log, records[start : start + 1000])


def _learn(url: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "slotwise", "learn", "--store", url, "--policies",
         str(tmp_path / "policies"), "--models", str(tmp_path / "models"), "--once",
         "--window", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


async def _state(url: str) -> tuple[frozenset[str], bytes | None]:
    async with open_store(url) as store:
        return await state.reverted(store), await store.get(state.stats_key("harmful"))


def test_a_restarted_learner_resumes_the_guardrail(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "p.sw").write_text(POLICY, encoding="utf-8")
    asyncio.run(_batch(url, 0))
    _learn(url, tmp_path)
    reverted, saved = asyncio.run(_state(url))
    assert reverted == frozenset() and saved is not None
    counts = json.loads(saved)
    assert counts["p_n"] + counts["c_n"] == 4000  # below the campaign's 6,000

    asyncio.run(_batch(url, 4000))
    _learn(url, tmp_path)
    reverted, saved = asyncio.run(_state(url))
    assert reverted == {"harmful"}

    async def record() -> state.RevertRecord | None:
        async with open_store(url) as store:
            return await state.details(store, "harmful")

    found = asyncio.run(record())
    assert found is not None and found.personalised + found.control == 8000

    async def enable() -> None:
        async with open_store(url) as store:
            assert await state.enable(store, "harmful")

    asyncio.run(enable())
    assert asyncio.run(_state(url)) == (frozenset(), None)
