"""A model swap while decisions keep coming fails no decision (the snapshot is one reference)."""

from __future__ import annotations

import random
import threading
from pathlib import Path

from slotwise.proxy.bandit import BanditRuntime, ModelStore
from slotwise.proxy.decision_log import OutcomeRecord, decision_record
from slotwise.proxy.learn.learner import Learner
from slotwise.proxy.learn.log import JoinedRecord
from tests.proxy.bandit.campaigns import make_campaign

SIGNALS = {"consent.level": "personal", "user.is_new": False, "device.type": "mobile"}


def test_decisions_keep_succeeding_while_models_are_published_and_swapped(
    tmp_path: Path,
) -> None:
    campaign = make_campaign()
    store = ModelStore(tmp_path)
    runtime = BanditRuntime(store, rng=random.Random(1))
    runtime.install([campaign])
    learner = Learner([campaign], store)
    stop = threading.Event()
    failures: list[BaseException] = []
    served: list[str] = []

    def traffic() -> None:
        n = 0
        while not stop.is_set():
            try:
                decision = runtime.choose("spring", {}, SIGNALS, f"u{n}")
                assert decision is not None
                assert all(c.variant is not None for c in decision.choices) or decision.holdout
                served.append(decision.model_version)
            except BaseException as exc:  # noqa: BLE001 - any failure fails the test
                failures.append(exc)
                return
            n += 1

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        for version in range(1, 11):
            for n in range(50):
                decision = runtime.choose("spring", {}, SIGNALS, f"x{version}-{n}")
                assert decision is not None
                record = decision_record(decision, f"d{version}-{n}", 0.0, "p")
                learner.learn(JoinedRecord(record, OutcomeRecord(), float(n % 2), True))
            learner.publish()
            assert runtime.reload() == ["spring"]
            assert runtime.snapshot.versions() == {"spring": f"v{version}"}
    finally:
        stop.set()
        worker.join(timeout=10)
    assert failures == []
    assert len(served) > 100
    assert "v0" in served and len(set(served)) >= 3  # decisions ran across several swaps
