"""`slotwise simulate` with a triggers scenario: triggered campaigns (the real compiled trigger)
vs standard retargeting, each against its own holdout; lift with intervals, and no lift where
the truth has none."""

from __future__ import annotations

import json

import pytest

from slotwise.proxy.cli import main
from tests.conftest import REPO

SCENARIOS = REPO / "examples" / "scenarios"


def test_triggered_reminders_lift_conversions_with_fewer_impressions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["simulate", str(SCENARIOS / "cart-triggers.toml"), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    triggered = report["strategies"]["triggered"]
    retargeting = report["strategies"]["retargeting"]
    assert triggered["lift"]["low"] > 0 and triggered["relative_lift"]["low"] > 0
    assert (
        triggered["impressions_per_incremental_conversion"]
        < retargeting["impressions_per_incremental_conversion"]
    )
    assert triggered["impressions"] < retargeting["impressions"]
    assert all(check["ok"] for check in report["checks"])


def test_without_an_effect_every_interval_covers_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", str(SCENARIOS / "cart-triggers-no-effect.toml")]) == 0
    out = capsys.readouterr().out
    assert out.count("[ok]") == 2 and "MISSED" not in out


def test_a_broken_triggers_scenario_is_a_usage_error(
    tmp_path: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"  # type: ignore[operator]
    bad.write_text('kind = "triggers"\nname = "x"\n')
    assert main(["simulate", str(bad)]) == 2
    assert "not a triggers scenario" in capsys.readouterr().err
