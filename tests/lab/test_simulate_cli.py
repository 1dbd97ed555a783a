"""``slotwise simulate`` and its outputs: bad input is refused before anything is written, and
a run that fails leaves the decision log and the models directory as they were."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from slotwise.proxy.cli import EXIT_INTERNAL, EXIT_USAGE, main

SCENARIOS = Path(__file__).resolve().parents[2] / "examples" / "scenarios"
SCENARIO = str(SCENARIOS / "segment-winners.toml")
OLD_LOG = '{"old": "log"}\n'


def _bad_scenario(tmp_path: Path) -> Path:
    text = (SCENARIOS / "segment-winners.toml").read_text("utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(
        text.replace("publish_every = 1_000", "publish_every = 0").replace(
            'policy = "segment-winners.sw"', f"policy = {str(SCENARIOS / 'segment-winners.sw')!r}"
        )
    )
    return bad


def _old_log(tmp_path: Path) -> Path:
    log = tmp_path / "decisions.jsonl"
    log.write_text(OLD_LOG)
    return log


def test_a_bad_scenario_touches_neither_the_log_nor_the_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, models = _old_log(tmp_path), tmp_path / "models"
    argv = ["simulate", str(_bad_scenario(tmp_path)), "--log", str(log), "--models", str(models)]
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "bad_scenario" in err and "publish_every must be a whole number of at least 1" in err
    assert log.read_text() == OLD_LOG
    assert not models.exists()


@pytest.mark.parametrize(
    ("option", "make", "expected"),
    [
        ("--models", "file", "--models {path} is a file; give a directory for the models"),
        ("--models", "under_file", "is inside {parent}, a file"),
        ("--log", "dir", "--log {path} is a directory; give the path of a file to write"),
        ("--log", "no_parent", "--log {path}: directory {parent} does not exist; create it first"),
        ("--log", "under_file", "--log {path}: {parent} is not a directory"),
    ],
)
def test_an_output_path_that_cannot_be_written_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, make: str, expected: str
) -> None:
    path = {
        "file": tmp_path / "a_file",
        "dir": tmp_path / "a_dir",
        "no_parent": tmp_path / "missing" / "deeper" / "x.jsonl",
        "under_file": tmp_path / "a_file" / "x",
    }[make]
    (tmp_path / "a_file").write_text("keep me")
    (tmp_path / "a_dir").mkdir()
    assert main(["simulate", SCENARIO, "--impressions", "10", option, str(path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert expected.format(path=path, parent=path.parent) in err
    assert "Error" not in err  # no FileExistsError, IsADirectoryError, FileNotFoundError
    assert (tmp_path / "a_file").read_text() == "keep me"
    assert not (tmp_path / "missing").exists()


def _failing_run(*_: Any, models_dir: Path, log_path: Path, **__: Any) -> None:
    """A run that writes part of its log and one model, then breaks off."""
    log_path.write_text('{"partial": true}\n')
    (models_dir / "spring_sale.model").write_bytes(b"partial")
    raise RuntimeError("the run broke off")


@pytest.mark.parametrize("models_existed", [False, True])
def test_a_failed_run_keeps_the_old_log_and_removes_only_what_it_created(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    models_existed: bool,
) -> None:
    monkeypatch.setattr("slotwise.lab.simulate.simulate", _failing_run)
    log, models = _old_log(tmp_path), tmp_path / "out" / "models"
    if models_existed:
        models.mkdir(parents=True)
    argv = ["simulate", SCENARIO, "--log", str(log), "--models", str(models)]
    assert main(argv) == EXIT_INTERNAL
    assert "the run broke off" in capsys.readouterr().err
    assert log.read_text() == OLD_LOG
    # no partial log beside it; the models directory only if it was there before the run
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == (["decisions.jsonl", "out"] if models_existed else ["decisions.jsonl"])
    assert models.is_dir() == models_existed


def test_a_finished_run_replaces_the_log_and_leaves_nothing_beside_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, models = _old_log(tmp_path), tmp_path / "new" / "models"
    argv = [
        "simulate",
        SCENARIO,
        "--impressions",
        "1000",
        "--log",
        str(log),
        "--models",
        str(models),
    ]
    main([*argv, "--format", "json"])
    assert json.loads(capsys.readouterr().out)["impressions"] == 1000
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert sum(r["type"] == "decision" for r in records) == 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["decisions.jsonl", "new"]
    assert any(models.iterdir())
