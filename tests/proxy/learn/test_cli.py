"""The learning verbs through the real CLI entry point (exit codes, JSON output, errors)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from slotwise.proxy.cli import main
from slotwise.proxy.decision_log import DecisionRecord, SlotRecord
from slotwise.proxy.learn.log import RewardRecord, write_log

ROOT = Path(__file__).resolve().parents[3]
SCENARIOS = ROOT / "examples" / "scenarios"


def _log(path: Path, n: int = 600) -> Path:
    rng = random.Random(3)
    records: list[DecisionRecord | RewardRecord] = []
    for i in range(n):
        variant = rng.choice(["image_1", "image_2"])
        records.append(
            DecisionRecord(
                id=f"d{i}",
                ts=float(i),
                campaign="spring_sale",
                slots=[SlotRecord("image", variant, 0.5, ["image_1", "image_2"])],
                signals={"device.type": "mobile"},
            )
        )
        if rng.random() < (0.4 if variant == "image_2" else 0.1):
            records.append(RewardRecord(f"d{i}", i + 1.0, "click"))
    write_log(path, records)
    return path


def test_simulate_reports_windows_and_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "sim.jsonl"
    code = main(
        [
            "simulate",
            str(SCENARIOS / "segment-winners.toml"),
            "--impressions",
            "2000",
            "--log",
            str(log),
            "--format",
            "json",
        ]
    )
    data = json.loads(capsys.readouterr().out)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert sum(r["type"] == "decision" for r in records) == 2000
    clicks = sum(r["type"] == "reward" and r["event"] == "click" for r in records)
    observed = sum(
        w["personalised"]["ctr"] * w["personalised"]["impressions"] for w in data["windows"]
    ) + sum(w["control"]["ctr"] * w["control"]["impressions"] for w in data["windows"])
    assert clicks == round(observed)
    assert main(["evaluate", str(log), "--window", "30", "--format", "json"]) == 0
    evaluation = json.loads(capsys.readouterr().out)
    assert evaluation["decisions"] == 2000
    assert code == 1  # 2,000 impressions are far too few to reach the oracle
    assert [w["end"] for w in data["windows"]] == [1000, 2000]
    assert data["combinations"] == 1000
    assert {c["check"].split(" (")[0] for c in data["checks"] if not c["ok"]} >= {
        "personalised CTR >= 90% of the oracle's"
    }
    assert set(data["segments"]) == {
        "young_mobile",
        "young_desktop",
        "older_mobile",
        "older_desktop",
    }
    # after 2,000 impressions the greedy choices are a mix of winners and losers
    greedy = data["greedy"]
    assert set(greedy["by_segment"]) == set(data["segments"])
    assert 0.3 < greedy["oracle_share"] < 0.95


def test_greedy_share_is_exactly_the_oracle_when_nothing_differs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    scenario = str(SCENARIOS / "no-segment-effect.toml")
    main(["simulate", scenario, "--impressions", "1000", "--format", "json"])
    greedy = json.loads(capsys.readouterr().out)["greedy"]
    assert greedy["oracle_share"] == pytest.approx(1.0)
    assert all(share == pytest.approx(1.0) for share in greedy["by_segment"].values())


def test_simulate_refuses_a_bad_scenario(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[campaign]\nslots = 3\n")
    assert main(["simulate", str(bad)]) == 2
    assert "bad_scenario" in capsys.readouterr().err
    assert main(["simulate", str(tmp_path / "missing.toml")]) == 2


def test_evaluate_a_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = _log(tmp_path / "log.jsonl")
    code = main(
        [
            "evaluate",
            str(log),
            "--candidate",
            "uniform",
            "--candidate",
            "fixed:image=image_2",
            "--window",
            "60",
            "--format",
            "json",
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["decisions"] == 600
    uniform, fixed = data["candidates"]
    assert uniform["ips"]["value"] == pytest.approx(data["logged"]["value"])
    assert fixed["dr"]["low"] > uniform["dr"]["high"]
    assert main(["evaluate", str(tmp_path / "nope.jsonl")]) == 2
    assert main(["evaluate", str(log), "--candidate", "magic"]) == 2
    assert main(["evaluate", str(log), "--candidate", "model", "--models", str(tmp_path)]) == 2


def test_learn_from_a_log_then_list_and_roll_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _log(tmp_path / "log.jsonl")
    models = tmp_path / "models"
    policy = str(SCENARIOS / "segment-winners.sw")
    for _ in range(2):
        assert (
            main(
                [
                    "learn",
                    "--policies",
                    policy,
                    "--log",
                    str(log),
                    "--models",
                    str(models),
                    "--window",
                    "60",
                ]
            )
            == 0
        )
    assert "published v2" in capsys.readouterr().out
    assert main(["model", "--models", str(models), "--format", "json", "list"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["version"], r["current"], r["examples"]) for r in rows] == [
        (1, False, 600),
        (2, True, 1200),
    ]
    assert main(["model", "--models", str(models), "rollback", "spring_sale"]) == 0
    assert "CURRENT is now v1" in capsys.readouterr().out
    assert main(["model", "--models", str(models), "rollback", "spring_sale"]) == 2
    assert main(["model", "--models", str(tmp_path / "none"), "list"]) == 2
    argv = ["evaluate", str(log), "--candidate", "model-greedy", "--models", str(models)]
    argv += ["--policies", policy, "--window", "60", "--format", "json"]
    assert main(argv) == 2  # v1 learned from this very log: refused unless asked for
    assert "training_log: model spring_sale v1 learned from" in capsys.readouterr().err
    code = main([*argv, "--allow-training-log"])
    assert code == 0
    greedy = json.loads(capsys.readouterr().out)["candidates"][0]
    assert greedy["support"] > 0.4  # it chooses image_2, half of the logged decisions


def test_learn_once_from_a_sqlite_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio
    import time

    from slotwise.proxy.learn.log import encode
    from slotwise.proxy.state import LogRecord, open_store

    url = f"sqlite:///{tmp_path / 'state.db'}"
    past = time.time() - 100

    async def fill() -> None:
        async with open_store(url) as store:
            decisions = [
                DecisionRecord(
                    id=f"d{i}",
                    ts=past,
                    campaign="spring_sale",
                    slots=[SlotRecord("image", "image_1", 0.5, ["image_1", "image_2"])],
                )
                for i in range(30)
            ]
            await store.log_append("decisions", [LogRecord(encode(d), id=d.id) for d in decisions])
            click = {"type": "click", "id": "e1", "time": past + 1, "decision_id": "d1"}
            envelope = {"received": past + 1, "consent": "personal", "event": click}
            await store.log_append("events", [LogRecord(json.dumps(envelope).encode())])

    asyncio.run(fill())
    models = tmp_path / "models"
    command = [
        "learn",
        "--policies",
        str(SCENARIOS / "segment-winners.sw"),
        "--store",
        url,
        "--once",
        "--window",
        "5",
        "--models",
        str(models),
    ]
    assert main(command) == 0
    assert "spring_sale: published v1 (30 examples)" in capsys.readouterr().out
    assert main(command) == 0  # everything was acknowledged: nothing to learn again
    assert "0 decisions and 0 events read" in capsys.readouterr().out
    assert (
        main(
            [
                "learn",
                "--policies",
                str(SCENARIOS / "segment-winners.sw"),
                "--store",
                "nosuch://x",
                "--once",
            ]
        )
        == 2
    )
