"""A model's training record: a bounded, uniform hash sample of the decision ids it learned."""

from __future__ import annotations

from pathlib import Path

import pytest

from slotwise.proxy.bandit import BanditError, ModelStore
from slotwise.proxy.bandit.store import read_info
from slotwise.proxy.bandit.training import (
    SAMPLE_LIMIT,
    TrainingData,
    TrainingRecorder,
    overlap,
)
from slotwise.proxy.bandit.workspace import new_workspace
from slotwise.types import Explore


def test_a_small_lineage_is_recorded_whole() -> None:
    recorder = TrainingRecorder()
    for i in range(1000):
        recorder.add(f"d{i}", 100.0 + i)
    data = recorder.data()
    assert data.bits == 0 and len(data.sample) == 1000
    assert (data.first_ts, data.last_ts) == (100.0, 1099.0)
    found = overlap(data, [f"d{i}" for i in range(500, 1500)])
    assert (found.decisions, found.sampled, found.learned, found.share) == (1000, 1000, 500, 0.5)


def test_a_large_lineage_keeps_a_bounded_uniform_sample() -> None:
    recorder = TrainingRecorder()
    for i in range(200_000):
        recorder.add(f"d{i}", float(i))
    data = recorder.data()
    assert len(data.sample) <= SAMPLE_LIMIT and data.bits >= 5
    assert data.problem() is None
    learned = overlap(data, (f"d{i}" for i in range(100_000, 150_000)))
    assert learned.share == 1.0 and learned.sampled > 500  # 50,000 / 2**bits
    half = overlap(data, (f"d{i}" for i in range(150_000, 250_000)))
    assert half.share == pytest.approx(0.5, abs=0.06)
    other = overlap(data, (f"x{i}" for i in range(50_000)))
    assert other.learned == 0 and other.sampled > 500


def test_a_continued_lineage_keeps_what_its_parent_learned() -> None:
    first = TrainingRecorder()
    for i in range(3000):
        first.add(f"a{i}", 10.0)
    second = TrainingRecorder(first.data())
    for i in range(3000):
        second.add(f"b{i}", 20.0)
    data = second.data()
    assert overlap(data, [f"a{i}" for i in range(3000)]).share == 1.0
    assert overlap(data, [f"b{i}" for i in range(3000)]).share == 1.0
    assert (data.first_ts, data.last_ts, data.complete) == (10.0, 20.0, True)
    assert not TrainingRecorder(None, complete=False).data().complete


def test_the_record_is_published_with_the_model_and_checked_on_reading(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    recorder = TrainingRecorder()
    recorder.add("d1", 5.0)
    workspace = new_workspace(Explore("epsilon", 0.1))
    info = store.publish("c", workspace, family="epsilon", examples=1, training=recorder.data())
    path = tmp_path / "c" / "v000001.json"
    assert read_info(path, "c", 1).training == info.training == recorder.data()
    path.write_text(path.read_text().replace('"bits": 0', '"bits": 99'))
    with pytest.raises(BanditError, match="training.bits 99 must be from 0 to 64"):
        read_info(path, "c", 1)
    assert TrainingData(bits=1, sample=(3,)).problem() is not None  # odd hash, 1 bit: excluded
