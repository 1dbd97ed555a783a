"""`slotwise learn` reverts a campaign whose personalisation harms its goal, and only that one.

A SQLite store holds a campaign's decisions and clicks where personalised decisions are
clicked far less often than control ones, the same traffic for a campaign whose policy says
`guardrail off`, one that asks for a larger sample (`guardrail min 100000`), and a harmless
one. `slotwise learn --once` (a one-second join window, so every decision is joined) must
revert the first only: the revert set and its record in the store, one log line, one JSON
POST to the webhook (a real HTTP receiver); `slotwise guardrail status` lists it (exit 1),
`slotwise guardrail enable` re-enables it (then status exits 0).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from slotwise.proxy.guardrail import state
from slotwise.proxy.state import LogRecord, open_store
from tests.conftest import REPO

POLICY = """policy "guardrails" version 1

campaign harmful {
  slot s at "$.a" { variant v1 "1"  variant v2 "2" }
  holdout 50%
}

campaign unguarded {
  slot s at "$.b" { variant v1 "1"  variant v2 "2" }
  holdout 50%
  guardrail off
}

campaign patient {
  slot s at "$.c" { variant v1 "1"  variant v2 "2" }
  holdout 50%
  guardrail min 100000
}

campaign harmless {
  slot s at "$.d" { variant v1 "1"  variant v2 "2" }
  holdout 50%
}
"""
RATES = {  # (personalised, control) click rates
    "harmful": (0.2, 0.4),
    "unguarded": (0.2, 0.4),
    "patient": (0.2, 0.4),
    "harmless": (0.3, 0.3),
}


@contextmanager
def _receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP server on loopback that keeps every JSON body POSTed to it."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server API)
            body = self.rfile.read(int(self.headers["content-length"]))
            received.append({"body": json.loads(body), "id": self.headers["webhook-id"]})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alerts", received
    finally:
        server.shutdown()
        server.server_close()


async def _fill(url: str, n: int = 4000) -> None:
    rng = random.Random(3)
    now = time.time()
    decisions, events = [], []
    for campaign, (personalised, control) in RATES.items():
        for i in range(n):
            ts = now - 600 + i * 0.1
            held = i % 2 == 0
            variant = rng.choice(["v1", "v2"])
            decision_id = f"{campaign}-{i}"
            slots = [] if held else [
                {"slot": "s", "variant": variant, "probability": 0.5, "candidates": ["v1", "v2"]}
            ]  # fmt: skip
            decisions.append(
                {"type": "decision", "id": decision_id, "ts": ts, "campaign": campaign,
                 "holdout": held, "holdout_share": 0.5, "slots": slots,
                 "eligible": {"s": ["v1", "v2"]}}
            )  # fmt: skip
            if rng.random() < (control if held else personalised):
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


def _slotwise(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slotwise", *argv],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


async def _reverted(url: str) -> tuple[frozenset[str], state.RevertRecord | None]:
    async with open_store(url) as store:
        return await state.reverted(store), await state.details(store, "harmful")


def test_the_learner_reverts_the_harmful_campaign_and_alerts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    asyncio.run(_fill(url))
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "p.sw").write_text(POLICY, encoding="utf-8")
    with _receiver() as (webhook, received):
        learn = _slotwise(
            "learn", "--store", url, "--policies", str(policies), "--models",
            str(tmp_path / "models"), "--once", "--window", "1",
            env={"SLOTWISE_GUARDRAIL_WEBHOOK_URL": webhook},
        )  # fmt: skip
        assert learn.returncode == 0, learn.stderr
    reverted, record = asyncio.run(_reverted(url))
    assert reverted == {"harmful"}
    assert record is not None and record.high < 0 and record.personalised == record.control
    assert record.relative is not None and -0.7 < record.relative < -0.3  # 0.2 vs 0.4
    lines = [line for line in learn.stderr.splitlines() if "guardrail: reverted" in line]
    assert len(lines) == 1 and "harmful" in lines[0], learn.stderr
    assert len(received) == 1
    alert = received[0]["body"]
    assert alert["type"] == "guardrail.reverted" and alert["data"]["campaign"] == "harmful"

    status = _slotwise("guardrail", "status", "--store", url)
    assert status.returncode == 1 and status.stdout.startswith("harmful: reverted at")
    enabled = _slotwise("guardrail", "enable", "harmful", "--store", url)
    assert enabled.returncode == 0, enabled.stderr
    assert _slotwise("guardrail", "status", "--store", url).returncode == 0
    again = _slotwise("guardrail", "enable", "harmful", "--store", url)
    assert again.returncode == 2 and "is not reverted" in again.stderr
