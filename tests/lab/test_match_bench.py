"""`slotwise bench match`: the realistic generator (default), the simple one, and timing your own
policies on your own requests (``--policy FILE_OR_DIR --contexts FILE.jsonl``), checked against
the reference evaluator."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from slotwise.dsl import evaluate
from slotwise.dsl.loader import compile_sources
from slotwise.dsl.schema_file import builtin_schema
from slotwise.lab import realistic_workload
from slotwise.proxy.cli import main

POLICY = """policy "shop" version 1

segment dach: geo.country in ["DE", "AT", "CH"] or request.language == "de"

campaign home {
  applies when request.page_type == "home"
  slot hero at "$.hero" {
    variant a "A"
    variant b "B"
    variant c "C"
  }
  rule "dach mobile" when dach and device.type == "mobile" then prefer hero b
  rule "not apple evening" when not (device.os == "ios" and time.hour >= 18) then exclude hero c
  rule "buyers" when count of purchase within 30d >= 2 then pin hero a
}

campaign cart {
  applies when request.page_type == "cart"
  slot hero at "$.hero" {
    variant x "X"
    variant y "Y"
  }
  rule "big" when cart.value >= 100 or "vip" in user.segments then boost hero y by 2
}
"""

LINES = [
    {"request.page_type": "home", "geo.country": "AT", "device.type": "mobile"},
    {"request.page_type": "home", "device.os": "ios", "time.hour": 20},
    {
        "signals": {"request.page_type": "home"},
        "events": [{"event": "purchase", "ago": "2d"}, {"event": "purchase", "ago": "3d"}],
    },
    {"request.page_type": "cart", "cart.value": 120.5},
    {"request.page_type": "cart", "user.segments": ["vip"]},
    {"request.page_type": "search"},
    {},
]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["bench", "match", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _files(tmp_path: Path, lines: list[str]) -> tuple[Path, Path]:
    policy = tmp_path / "policies" / "shop.sw"
    policy.parent.mkdir()
    policy.write_text(POLICY, encoding="utf-8")
    contexts = tmp_path / "requests.jsonl"
    contexts.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return policy, contexts


def test_own_policy_on_own_requests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy, contexts = _files(tmp_path, [json.dumps(line) for line in LINES])
    code, out, err = _run(
        capsys,
        "--policy", str(policy.parent), "--contexts", str(contexts),
        "--builtin-schema", "--rounds", "2", "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["agree"] is True and report["disagreements"] == []
    assert report["rules"] == 4 and report["campaigns"] == 2
    assert report["contexts"] == 7 and report["reference_contexts"] == 7
    # the search page and the empty request select no campaign: not timed
    assert report["contexts_matched"] == 5
    assert report["compiled_eligible_us"]["samples"] == 10
    code, out, _ = _run(
        capsys, "--policy", str(policy), "--contexts", str(contexts), "--builtin-schema"
    )
    assert code == 0 and "2 campaign(s), 7 requests (5 select a campaign)" in out
    assert "agree: True" in out


def test_disagreements_fail_the_run_and_name_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    policy, contexts = _files(tmp_path, [json.dumps(line) for line in LINES])
    # one side that forgets every rule: the check must catch it. The check compares both
    # ways; the forgetful side is the reference here because the compiled matcher may be
    # built with mypyc, whose classes cannot be patched (slotwise/native.py)
    real = evaluate.evaluate_campaign
    monkeypatch.setattr(
        evaluate,
        "evaluate_campaign",
        lambda *args, **kwargs: dataclasses.replace(real(*args, **kwargs), matched_rules=()),
    )
    code, out, _ = _run(
        capsys, "--policy", str(policy), "--contexts", str(contexts), "--builtin-schema"
    )
    assert code == 1
    assert "DISAGREEMENTS" in out
    assert re.search(
        r"line 1: campaign home: compiled matched \['dach mobile', 'not apple evening'\] "
        r"the reference does not; the reference matched \[\]",
        out,
    )


def test_bad_lines_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [json.dumps(LINES[0]), "{not json", "", '"just a string"', '{"x.y": {"a": 1}}']
    policy, contexts = _files(tmp_path, lines)
    code, _, err = _run(
        capsys, "--policy", str(policy), "--contexts", str(contexts), "--builtin-schema"
    )
    assert code == 2
    assert "3 bad line(s)" in err
    assert f"{contexts}:2: not a JSON object" in err
    assert f"{contexts}:4: expected a JSON object of signals" in err
    assert f"{contexts}:5: x.y: unsupported value" in err
    assert "Traceback" not in err


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy, contexts = _files(tmp_path, [])
    code, _, err = _run(capsys, "--policy", str(policy), "--builtin-schema")
    assert code == 2 and "--policy needs --contexts FILE.jsonl" in err
    code, _, err = _run(capsys, "--policy", str(policy), "--contexts", str(contexts))
    assert code == 2 and "holds no requests" in err
    code, _, err = _run(capsys, "--policy", str(policy), "--contexts", str(tmp_path / "nope"))
    assert code == 2 and "cannot read --contexts" in err
    code, _, err = _run(capsys, "--contexts", "0")
    assert code == 2 and "--contexts must be at least 1" in err
    code, _, err = _run(capsys, "--policy", str(tmp_path / "missing.sw"), "--contexts", "x.jsonl")
    assert code == 1 and "missing.sw: error: unreadable_file: no such file or folder" in err


def test_default_workload_is_realistic(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--rules", "300", "--contexts", "40", "--rounds", "1", "--json")
    report = json.loads(out)
    assert code == 0 and report["workload"] == "realistic" and report["agree"] is True
    assert report["rules"] == 300 and report["reference_contexts"] == 40
    code, out, _ = _run(
        capsys, "--workload", "simple", "--rules", "200", "--contexts", "20", "--rounds", "1",
        "--json",
    )  # fmt: skip
    report = json.loads(out)
    assert code == 0 and report["workload"] == "simple" and report["agree"] is True


def test_realistic_rules_have_the_shapes_of_real_rule_sets() -> None:
    text = realistic_workload.policy_text(4000, seed=3)
    rules = [line for line in text.splitlines() if line.startswith('  rule "')]
    conditions = [line.split(" when ", 1)[1].split(" then ", 1)[0] for line in rules]
    assert len(conditions) == 4000
    share = {
        "or": sum(" or " in c for c in conditions) / 4000,
        "not_and": sum(c.startswith("not (") for c in conditions) / 4000,
        "segment": sum(bool(re.match(r"(not )?(seg_\d+|[a-z_]+)( and |$)", c)) for c in conditions)
        / 4000,
    }
    assert 0.02 <= share["or"] <= 0.045, share
    assert 0.012 <= share["not_and"] <= 0.03, share
    assert 0.02 <= share["segment"] <= 0.045, share
    for form in (
        " in [",
        " not in [",
        " has any [",
        " has all [",
        "..<",
        ">= ",
        "count of ",
        "event ",
        "user.is_new",
        '" in user.segments',
    ):
        assert any(form in c for c in conditions), form
    # every one of the 13 attribute groups appears
    names = {m for c in conditions for m in re.findall(r"\b(?:[a-z]+\.[a-z_]+|event|count)\b", c)}
    assert {
        "user.age",
        "user.gender",
        "geo.country",
        "geo.region",
        "device.type",
        "device.os",
        "device.browser",
        "time.hour",
        "time.weekday",
        "user.segments",
        "cart.value",
        "event",
        "request.page_type",
    } <= names
    policy, loaded = compile_sources([("r.sw", text)], builtin_schema())
    assert not loaded.errors and len(policy.campaigns[0].rules) == 4000


def test_realistic_requests_miss_signals() -> None:
    requests = list(realistic_workload.contexts(500, seed=5))
    assert any("user.age" not in ctx.signals for ctx in requests)
    assert any("user.segments" not in ctx.signals for ctx in requests)
    assert any("geo.country" not in ctx.signals for ctx in requests)
    assert any(ctx.history.count("purchase", 0.0) for ctx in requests)
