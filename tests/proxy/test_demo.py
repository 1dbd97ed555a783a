"""`slotwise demo` end to end: real ad server and proxy processes, and it stops by itself."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from slotwise.proxy.cli import main
from tests.conftest import REPO


@pytest.mark.slow
def test_demo_serves_every_segment_and_logs_decisions(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a relative --policies is the caller's, though the servers run from the repository
    monkeypatch.chdir(REPO / "examples" / "adserver")
    argv = ["demo", "--users", "3", "--requests", "2", "--policies", "policies"]
    assert main([*argv, "--learn-impressions", "3000"]) == 0
    out = capsys.readouterr().out
    for segment in ("Germany", "France", "loyal desktop", "without consent"):
        assert segment in out
    assert "'Frühlingsangebote'" in out  # the DE pin reached German users
    sent, decisions = re.search(r"(\d+) ad requests .* (\d+) decisions in the log", out).groups()  # type: ignore[union-attr]
    assert int(sent) == 72 and int(decisions) == 72
    assert 'slotwise_decisions_total{campaign="native_outdoor"}' in out
    # the learning part: CTR over time and a lift row per segment of the scenario
    assert "Learning: 3,000 simulated impressions" in out
    for segment in ("young_mobile", "young_desktop", "older_mobile", "older_desktop"):
        assert re.search(rf"{segment}\s+\d\.\d{{3}}\s+\d\.\d{{3}}\s+[+-]\d\.\d{{3}} \(", out)


def test_the_quick_start_demo_runs_on_the_shipped_policies(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # `make demo`: the default policies are policies/, whose trigger sends e-mail (no SMTP here)
    monkeypatch.chdir(REPO)
    assert main(["demo", "--users", "1", "--requests", "1", "--learn-impressions", "0"]) == 0
    out = capsys.readouterr().out
    assert "slotwise demo: policies from policies" in out and "decisions in the log" in out
    # the storefront behind its own proxy: trending, then the returning visitor's last visit
    assert "Storefront: examples/storefront (3,156 products)" in out
    assert re.search(r"for you: +trending +'", out) and re.search(r"last visit '.*Retrospot", out)
    assert re.search(r"first five: +Retrospot", out) and "bought with it '" in out


def test_broken_policies_stop_the_demo_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.sw").write_text('policy "x" version 1\ncampaign {\n')
    assert main(["demo", "--policies", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "slotwise demo: the policies in" in err and "bad.sw:2:10: error: syntax_error" in err
    assert main(["demo", "--users", "0"]) == 2
