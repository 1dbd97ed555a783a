"""``slotwise learn`` on bad input: a clear error or warning on stderr, never a traceback.

Every case ends with exit 0 (a warning, and the learner publishes a model CURRENT can name),
1 (what was given is wrong) or 2 (bad usage); nothing half-made is left behind.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from slotwise.proxy.cli import main
from slotwise.proxy.decision_log import DecisionRecord, SlotRecord
from slotwise.proxy.learn.log import RewardRecord, write_log

ROOT = Path(__file__).resolve().parents[3]
POLICY = str(ROOT / "examples" / "scenarios" / "segment-winners.sw")


def _log(path: Path, n: int = 200) -> Path:
    rng = random.Random(5)
    records: list[DecisionRecord | RewardRecord] = []
    for i in range(n):
        variant = rng.choice(["image_1", "image_2"])
        slot = SlotRecord("image", variant, 0.5, ["image_1", "image_2"])
        records.append(
            DecisionRecord(id=f"d{i}", ts=float(i), campaign="spring_sale", slots=[slot])
        )
        if rng.random() < 0.3:
            records.append(RewardRecord(f"d{i}", i + 1.0, "click"))
    write_log(path, records)
    return path


def _learn(log: Path, models: Path | str, *extra: str) -> int:
    argv = ["learn", "--policies", POLICY, "--log", str(log), "--models", str(models)]
    return main([*argv, "--window", "60", *extra])


@pytest.fixture
def models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A models directory with v1 and v2 (CURRENT) of spring_sale."""
    log = _log(tmp_path / "log.jsonl")
    directory = tmp_path / "models"
    assert _learn(log, directory) == 0 and _learn(log, directory) == 0
    capsys.readouterr()
    return directory


def _rewrite(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


DAMAGED_CURRENT: dict[str, Callable[[Path], object]] = {
    "truncated model": lambda f: f.joinpath("v000002.vw").write_bytes(b"\x00" * 50),
    "unknown family": lambda f: _rewrite(f / "v000002.json", "squarecb", "bogus"),
    "unreadable metadata": lambda f: f.joinpath("v000002.json").write_text("{bad"),
    "version is a string": lambda f: _rewrite(f / "v000002.json", '"version": 2', '"version": "2"'),
    "another family": lambda f: _rewrite(
        f / "v000002.json", '"family": "squarecb"', '"family": "softmax"'
    ),
    "CURRENT garbled": lambda f: f.joinpath("CURRENT").write_text("abc"),
    "CURRENT missing": lambda f: f.joinpath("CURRENT").unlink(),
}


@pytest.mark.parametrize("damage", DAMAGED_CURRENT.values(), ids=DAMAGED_CURRENT.keys())
def test_learn_publishes_from_scratch_over_a_current_it_cannot_continue_from(
    tmp_path: Path,
    models: Path,
    capsys: pytest.CaptureFixture[str],
    damage: Callable[[Path], object],
) -> None:
    folder = models / "spring_sale"
    damage(folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "CURRENT"}
    assert _learn(tmp_path / "log.jsonl", models) == 0
    out, err = capsys.readouterr()
    assert "warning" in err and "from scratch" in err
    assert "published v3 (200 examples)" in out  # from scratch: not 600
    assert (folder / "CURRENT").read_text().strip() == "3"
    assert all((folder / name).read_bytes() == data for name, data in before.items())
    assert _learn(tmp_path / "log.jsonl", models) == 0  # and continues from it
    assert "published v4 (400 examples)" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["missing", "directory", "not a database"])
def test_learn_from_a_store_that_is_not_there_names_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    path = tmp_path / "state" / "x.db"
    if kind == "directory":
        path.mkdir(parents=True)
    elif kind == "not a database":
        path.parent.mkdir()
        path.write_text("hello, not sqlite\n" * 20)
    argv = ["learn", "--policies", POLICY, "--store", f"sqlite:///{path}", "--once"]
    code = main([*argv, "--models", str(tmp_path / "models")])
    err = capsys.readouterr().err
    assert code == (2 if kind == "missing" else 1)
    assert "--store" in err and str(path) in err and "internal error" not in err
    assert not (tmp_path / "models").exists()
    if kind == "missing":
        assert not path.parent.exists()  # no directory, no empty database


def test_learn_from_an_unreachable_redis_names_store(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["learn", "--policies", POLICY, "--store", "redis://127.0.0.1:1", "--once"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "--store redis://127.0.0.1:1" in err and "check that redis is running" in err


def test_learn_refuses_a_store_private_to_its_own_process(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["learn", "--policies", POLICY, "--store", "memory://", "--once"]) == 2
    assert "memory:// is private to one process" in capsys.readouterr().err


@pytest.mark.parametrize("log", ["notjson", "missing"])
def test_learn_creates_nothing_when_the_log_is_bad(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], log: str
) -> None:
    path = tmp_path / f"{log}.jsonl"
    if log == "notjson":
        path.write_text("notjson\n")
    assert _learn(path, tmp_path / "lm2") in (1, 2)
    assert f"{path}" in capsys.readouterr().err
    assert not (tmp_path / "lm2").exists()


def test_learn_refuses_models_paths_that_are_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _log(tmp_path / "log.jsonl")
    (tmp_path / "afile").write_text("")
    assert _learn(log, tmp_path / "afile") == 2
    assert "--models" in capsys.readouterr().err
    assert _learn(log, tmp_path / "afile" / "sub") == 2
    assert "is a file, not a directory" in capsys.readouterr().err
    (tmp_path / "md").mkdir()
    (tmp_path / "md" / "spring_sale").write_text("")
    assert _learn(log, tmp_path / "md") == 2
    assert "spring_sale is a file" in capsys.readouterr().err


@pytest.mark.parametrize(
    "option", [["--window", "nan"], ["--window", "0"], ["--publish-every", "inf"]]
)
def test_learn_refuses_durations_that_are_not_positive_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: list[str]
) -> None:
    assert _learn(_log(tmp_path / "log.jsonl"), tmp_path / "m", *option) == 2
    assert f"{option[0]} must be a positive number" in capsys.readouterr().err
