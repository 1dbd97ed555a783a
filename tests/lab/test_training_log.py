"""A model is not evaluated on the decisions it learned from unless that is asked for, and then
every output says so."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from slotwise.proxy.cli import main
from slotwise.proxy.decision_log import DecisionRecord, SlotRecord
from slotwise.proxy.learn.log import RewardRecord, write_log

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "examples" / "scenarios" / "segment-winners.sw"


def _log(path: Path, prefix: str, start: float, n: int = 400) -> Path:
    rng = random.Random(prefix)
    records: list[DecisionRecord | RewardRecord] = []
    for i in range(n):
        variant = rng.choice(["image_1", "image_2"])
        slot = SlotRecord("image", variant, 0.5, ("image_1", "image_2"))
        records.append(
            DecisionRecord(id=f"{prefix}{i}", ts=start + i, campaign="spring_sale", slots=[slot])
        )
        if rng.random() < (0.3 if variant == "image_2" else 0.1):
            records.append(RewardRecord(f"{prefix}{i}", start + i + 1, "click"))
    write_log(path, records)
    return path


@pytest.fixture
def trained(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    """A model learned from log a.jsonl, and the models directory."""
    log = _log(tmp_path / "a.jsonl", "a", 1_764_000_000.0)
    models = tmp_path / "models"
    argv = ["learn", "--policies", str(POLICY), "--log", str(log), "--models", str(models)]
    assert main(argv) == 0
    capsys.readouterr()
    return log, models


def _evaluate(log: Path, models: Path, *extra: str) -> list[str]:
    return ["evaluate", str(log), "--candidate", "model-greedy", "--models", str(models)] + [
        "--policies",
        str(POLICY),
        *extra,
    ]


def test_a_model_on_its_training_log_is_refused(
    trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    log, models = trained
    assert main(_evaluate(log, models)) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "slotwise evaluate: training_log: model spring_sale v1 learned from decisions of" in err
    assert "about 100% of its 400 served decisions, from a 1-in-1 sample of ids: 400 of 400" in err
    assert "decisions logged after 2025-11-24T16:06:39Z" in err
    assert "`slotwise export decisions --since 2025-11-24T16:06:40Z`" in err
    assert "or pass --allow-training-log" in err


def test_allowed_it_is_evaluated_with_a_warning_in_every_output(
    trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    log, models = trained
    assert main(_evaluate(log, models, "--allow-training-log")) == 0
    out, err = capsys.readouterr()
    assert "WARNING: model spring_sale v1 learned from decisions of this log" in out
    assert "(--allow-training-log)" in out and "slotwise evaluate: warning: model" in err
    assert main(_evaluate(log, models, "--allow-training-log", "--format", "json")) == 0
    data = json.loads(capsys.readouterr().out)
    (check,) = data["training_log"]
    assert check["model"] == "spring_sale v1" and check["share"] == 1.0
    assert check["learned"] == check["sampled"] == check["compared"] == 400
    assert any("learned from decisions of this log" in w for w in data["warnings"])


def test_a_later_log_is_evaluated_and_a_mixed_one_refused(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, models = trained
    later = _log(tmp_path / "b.jsonl", "b", 1_764_100_000.0)
    assert main(_evaluate(later, models, "--format", "json")) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["training_log"][0]["learned"] == 0 and data["warnings"] == []
    # half of a merged log was learned from: still refused
    assert (
        main(_evaluate(trained[0], models)[:2] + [str(later)] + _evaluate(later, models)[2:]) == 2
    )
    assert "about 50% of its 800 served decisions" in capsys.readouterr().err


def test_a_continued_model_remembers_its_parents_training(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, models = trained
    later = _log(tmp_path / "b.jsonl", "b", 1_764_100_000.0)
    argv = ["learn", "--policies", str(POLICY), "--log", str(later), "--models", str(models)]
    assert main(argv) == 0
    assert main(_evaluate(first, models)) == 2  # v2 continued from v1, which learned from a
    assert "model spring_sale v2 learned from" in capsys.readouterr().err


def test_a_model_without_a_training_record_is_evaluated_with_a_warning(
    trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    log, models = trained
    metadata = models / "spring_sale" / "v000001.json"
    data = json.loads(metadata.read_text())
    del data["training"]
    metadata.write_text(json.dumps(data))
    assert main(_evaluate(log, models)) == 0
    assert "records no training data (published before slotwise recorded it)" in (
        capsys.readouterr().err
    )
