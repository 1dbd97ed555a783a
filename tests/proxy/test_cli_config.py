"""Every command that reads settings reads them through the one configuration model: it takes
``--config`` (else ``$SLOTWISE_CONFIG``), refuses a bad one before doing anything (exit 2), and
its flags win over the file's keys."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from slotwise.proxy.cli import main
from slotwise.proxy.decision_log import DecisionRecord, SlotRecord
from slotwise.proxy.learn.log import write_log

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "examples" / "scenarios" / "segment-winners.sw"


@pytest.fixture
def bad_config(tmp_path: Path) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text("[bandit]\nmodels_dri = 'x'\n")
    return path


def _log(path: Path) -> Path:
    rng = random.Random(3)
    write_log(
        path,
        [
            DecisionRecord(
                id=f"d{i}",
                ts=float(i),
                campaign="spring_sale",
                slots=[
                    SlotRecord(
                        "image", rng.choice(["image_1", "image_2"]), 0.5, ["image_1", "image_2"]
                    )
                ],
            )
            for i in range(40)
        ],
    )
    return path


ARGV = {
    "serve": ["serve", "--upstream", "http://127.0.0.1:1"],
    "demo": ["demo"],
    "learn": ["learn", "--policies", str(POLICY), "--log", "absent.jsonl"],
    "model": ["model", "list"],
    "evaluate": ["evaluate", "absent.jsonl"],
    "signals": ["signals"],
}


@pytest.mark.parametrize("command", ARGV)
def test_every_settings_command_refuses_a_bad_config_first(
    command: str, bad_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    verb, *rest = ARGV[command]
    assert main([verb, "--config", str(bad_config), *rest]) == 2
    err = capsys.readouterr().err
    assert f"slotwise {command}: invalid configuration:" in err
    assert "unknown key 'bandit.models_dri' (did you mean 'bandit.models_dir'?)" in err


@pytest.mark.parametrize("command", ARGV)
def test_slotwise_config_names_the_file_without_a_flag(
    command: str,
    bad_config: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLOTWISE_CONFIG", str(bad_config))
    assert main(ARGV[command]) == 2
    assert "unknown key 'bandit.models_dri'" in capsys.readouterr().err


@pytest.mark.parametrize("command", ARGV)
def test_an_unknown_or_renamed_variable_stops_every_settings_command(
    command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLOTWISE_MODELS_DIR", "/somewhere")
    assert main(ARGV[command]) == 2
    err = capsys.readouterr().err
    assert "environment SLOTWISE_MODELS_DIR: is no longer read" in err
    assert "set SLOTWISE_BANDIT_MODELS_DIR instead" in err


def test_learn_model_and_evaluate_read_the_models_dir_and_policies_from_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    models = tmp_path / "configured-models"
    config = tmp_path / "slotwise.toml"
    config.write_text(f"[proxy]\npolicies = '{POLICY}'\n[bandit]\nmodels_dir = '{models}'\n")
    log = _log(tmp_path / "log.jsonl")
    assert main(["learn", "--log", str(log), "--config", str(config)]) == 0
    assert "spring_sale: published v1" in capsys.readouterr().out
    assert (models / "spring_sale" / "CURRENT").read_text().strip() == "1"
    assert main(["model", "--config", str(config), "list"]) == 0
    assert "spring_sale" in capsys.readouterr().out
    # the environment names the same directory; a flag wins over both
    monkeypatch.setenv("SLOTWISE_BANDIT_MODELS_DIR", str(models))
    assert main(["model", "list"]) == 0
    assert "spring_sale" in capsys.readouterr().out
    other = tmp_path / "other"
    assert main(["model", "--models", str(other), "--config", str(config), "list"]) == 2
    assert f"no models directory at {other}" in capsys.readouterr().err
    argv = ["evaluate", str(log), "--candidate", "model", "--config", str(config)]
    assert main([*argv, "--allow-training-log"]) == 0  # the model learned from this very log
    assert "model" in capsys.readouterr().out


def test_learn_takes_the_store_from_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "state" / "x.db"
    config = tmp_path / "slotwise.toml"
    config.write_text(f"[store]\nurl = 'sqlite:///{missing}'\n")
    argv = ["learn", "--policies", str(POLICY), "--once", "--models", str(tmp_path / "m")]
    assert main([*argv, "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "--store sqlite:///" in err and "no state database at" in err and str(missing) in err
    assert main(argv) == 2  # no source at all: the default store is private to a process
    assert "nothing to learn from: pass --log FILE, or --store URL" in capsys.readouterr().err


def test_serve_reads_the_config_and_its_flags_win(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "slotwise.toml"
    config.write_text(
        f"[upstream]\nurl = 'http://127.0.0.1:1'\n[proxy]\npolicies = '{tmp_path / 'none'}'\n"
    )
    assert main(["serve", "--config", str(config)]) == 2
    assert f"policy directory {tmp_path / 'none'} does not exist" in capsys.readouterr().err
    argv = ["serve", "--config", str(config), "--policies", str(tmp_path), "--port", "0"]
    assert main(argv) == 2
    assert "--port: must be at least 1, not 0" in capsys.readouterr().err
