"""`slotwise signals`: the listing, JSON for machines, errors without tracebacks."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from slotwise.plugins.registry import load_schema
from slotwise.proxy.cli import COMMANDS, failed
from slotwise.proxy.cli import signals as verb


def main(argv: list[str]) -> int:
    """Run the verb as `slotwise` does (without importing every other verb's module): its
    errors end it through the command's one mapping of errors to exit codes."""
    assert argv[0] == "signals" and COMMANDS["signals"][0] == verb.__name__
    parser = argparse.ArgumentParser(prog="slotwise signals")
    verb.add_arguments(parser)
    try:
        return verb.run(parser.parse_args(argv[1:]))
    except Exception as exc:
        return failed("signals", exc)


def test_text_lists_every_signal_with_type_provider_and_consent(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["signals"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    for spec in load_schema():
        assert spec.name in lines
        assert lines[spec.name][1:4] == [
            spec.type.value,
            spec.provider,
            "personal" if spec.personal else "contextual",
        ]
    assert "Range 0..23." in out


def test_json_is_complete(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["signals", "--format", "json", "--plugins", "builtins"]) == 0
    document = json.loads(capsys.readouterr().out)
    signals = {s["name"]: s for s in document["signals"]}
    assert signals["time.hour"] == {
        "name": "time.hour",
        "type": "int",
        "provider": "time",
        "personal": False,
        "description": "Local hour of the day.",
        "values": None,
        "minimum": 0,
        "maximum": 23,
    }
    assert signals["user.segments"]["personal"] is True
    providers = {p["name"]: p for p in document["providers"]}
    assert providers["time"]["reads"] == ["geo.timezone"]
    assert providers["geo"]["origin"] == "built-in"


def test_bad_selection_is_reported_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["signals", "--plugins", "builtins,devise"]) == 1
    err = capsys.readouterr().err
    assert 'did you mean "device"' in err
    assert "Traceback" not in err


def test_config_tables_are_validated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[plugins.time]\ndefault_timezone = "Europe/Berlin"\n')
    assert main(["signals", "--config", str(good)]) == 0
    capsys.readouterr()
    bad = tmp_path / "bad.toml"
    bad.write_text('[plugins.time]\ndefault_timezone = "Mars/Olympus"\n[plugins.geo]\nx = 1\n')
    assert main(["signals", "--config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "provider 'time'" in err and "Mars/Olympus" in err
    assert "provider 'geo'" in err and "`x`" in err
