"""The policy verbs of the `slotwise` command: check, fmt, test, explain, bench match."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from slotwise.dsl import ast, served
from slotwise.proxy.cli import main

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies"

GOOD = """policy "good" version 1

campaign c {
  slot s at "$.s" {
    variant a "A"
    variant b "B"
  }
  rule "mobile" when device.type == "mobile" then prefer s b
}

test "mobile prefers b" {
  given device.type = "mobile"
  expect c.s == b
}
"""

BAD = """policy "bad" version 1

campaign c {
  slot s at "$.s" {
    variant a "A"
  }
  rule "typo" when geo.contry == "DE" then pin s a
  rule "wrong type" when user.age == "old" then pin s zz
}
"""

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    def invoke(*argv: str) -> tuple[int, str, str]:
        code = main([*argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


def test_check_is_silent_when_clean(run: Run) -> None:
    assert run("check", "--builtin-schema", str(POLICIES / "ads.sw")) == (0, "", "")


def test_check_flags_nothing_the_proxy_serves(run: Run) -> None:
    # policies/ holds campaigns, a trigger, two offer sets, three recommendations and a re-rank:
    # the proxy serves every one of them, so check says nothing of serving
    code, out, err = run("check", "--builtin-schema", str(POLICIES))
    assert (code, out, err) == (0, "", "")


def test_check_says_what_the_proxy_does_not_serve_yet(
    run: Run, write: Callable[[str, str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a kind the language has before the proxy serves it is flagged on every block of it
    monkeypatch.setitem(served.NOT_YET_SERVED, ast.Rerank, ("rerank", "reorder its list"))
    rerank = 'rerank listing at "$.products" by affinity(clicks: category)\n'
    path = write("lists.sw", 'policy "lists" version 1\n' + rerank)
    code, out, err = run("check", "--builtin-schema", str(path))
    assert (code, out) == (0, "")
    assert 'warning: not_yet_served: rerank "listing" is checked' in err


def test_check_reports_every_error_with_location_and_caret(
    run: Run, write: Callable[[str, str], Path]
) -> None:
    path = write("bad.sw", BAD)
    code, out, err = run("check", "--builtin-schema", str(path))
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert lines[0] == (
        f'{path}:7:20: error: unknown_signal: unknown signal "geo.contry" '
        '(did you mean "geo.country"?)'
    )
    assert lines[1] == '      rule "typo" when geo.contry == "DE" then pin s a'
    assert lines[2] == "                       ^^^^^^^^^^"
    assert 'hint: "geo.country" comes from the geo provider' in lines[3]
    codes = [line.split(": ")[2] for line in lines if line.startswith(str(path))]
    assert codes == ["unknown_signal", "type_mismatch", "unknown_variant"]
    assert "Traceback" not in err


def test_check_json(run: Run, write: Callable[[str, str], Path]) -> None:
    path = write("bad.sw", BAD)
    code, out, _ = run("check", "--builtin-schema", "--format", "json", str(path))
    document = json.loads(out)
    assert code == 1 and document["ok"] is False
    assert [d["code"] for d in document["diagnostics"]] == [
        "unknown_signal",
        "type_mismatch",
        "unknown_variant",
    ]
    assert document["diagnostics"][0]["line"] == 7


def test_check_missing_path(run: Run, tmp_path: Path) -> None:
    code, _, err = run("check", "--builtin-schema", str(tmp_path / "nope.sw"))
    assert code == 1 and "unreadable_file" in err


def test_check_syntax_error_is_friendly(run: Run, write: Callable[[str, str], Path]) -> None:
    path = write("syntax.sw", 'policy "p" version 1\nsegment s: user.age = 3\n')
    code, _, err = run("check", "--builtin-schema", str(path))
    assert code == 1
    assert f"{path}:2:21: error: syntax_error: unexpected '='" in err
    assert "hint: compare with `==`, not `=`" in err


def test_a_name_defined_twice_is_one_error_and_checked_as_first_defined(
    run: Run, write: Callable[[str, str], Path]
) -> None:
    first = write("a.sw", GOOD)
    second = write(
        "b.sw",
        'policy "other" version 1\n\ncampaign c {\n  slot s at "$.s" {\n    variant z "Z"\n'
        "  }\n}\n",
    )
    code, out, err = run("check", "--builtin-schema", str(first), str(second))
    assert code == 1
    errors = [line for line in (out + err).splitlines() if ": error: " in line]
    assert errors == [
        f'{second}:3:1: error: duplicate_name: campaign "c" is already defined at {first}:3:1'
    ]  # the test in a.sw is checked against a.sw's campaign, not b.sw's


def test_bad_options_are_usage_errors(run: Run, write: Callable[[str, str], Path]) -> None:
    path = write("good.sw", GOOD)
    signals = write("signals.json", "")
    signals.write_bytes(b'{"device.type": "\xff"}')
    code, _, err = run("explain", "--builtin-schema", str(path), "--signals", str(signals))
    assert code == 2 and "is not JSON (UTF-8)" in err
    code, _, err = run("bench", "match", "--rules", "10", "--reference-contexts", "-3")
    assert code == 2 and "--reference-contexts must be 0" in err


def test_special_files_are_named_for_what_they_are(run: Run) -> None:
    code, out, err = run("check", "--builtin-schema", "/dev/null", "/nonexistent.sw")
    assert code == 1
    assert "/dev/null: error: unreadable_file: not a regular file or folder" in out + err
    assert "/nonexistent.sw: error: unreadable_file: no such file or folder" in out + err


def test_fmt_check_diff_and_write(run: Run, write: Callable[[str, str], Path]) -> None:
    path = write("x.sw", 'policy "p"   version 1\nsegment s:user.is_new\n')
    code, _, err = run("fmt", "--check", str(path))
    assert code == 1 and "not formatted" in err
    code, out, _ = run("fmt", "--diff", str(path))
    assert code == 0 and "+segment s: user.is_new" in out
    assert path.read_text() == 'policy "p"   version 1\nsegment s:user.is_new\n'
    assert run("fmt", str(path))[0] == 0
    assert path.read_text() == 'policy "p" version 1\n\nsegment s: user.is_new\n'
    assert run("fmt", "--check", str(path)) == (0, "", "")


def test_fmt_writes_a_file_whole_or_not_at_all(
    run: Run, write: Callable[[str, str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    original = 'policy "p"   version 1\nsegment s:user.is_new\n'
    path = write("x.sw", original)
    path.chmod(0o640)

    def disk_full(source: str, target: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.replace", disk_full)
    code, _, err = run("fmt", str(path))
    assert code == 1 and f"cannot write {path}: No space left on device" in err
    assert path.read_text() == original
    assert [p.name for p in path.parent.iterdir()] == ["x.sw"]  # no temporary file left
    monkeypatch.undo()
    assert run("fmt", str(path))[0] == 0
    assert path.read_text() == 'policy "p" version 1\n\nsegment s: user.is_new\n'
    assert path.stat().st_mode & 0o777 == 0o640  # the file keeps its permissions
    link = path.with_name("link.sw")
    link.symlink_to(path)
    path.write_text(original)
    assert run("fmt", str(link))[0] == 0
    assert (
        link.is_symlink() and path.read_text() == 'policy "p" version 1\n\nsegment s: user.is_new\n'
    )


def test_fmt_leaves_broken_files_alone(run: Run, write: Callable[[str, str], Path]) -> None:
    path = write("x.sw", 'policy "p" version 1\nsegment s user.is_new\n')
    code, _, err = run("fmt", str(path))
    assert code == 1 and "syntax_error" in err
    assert path.read_text() == 'policy "p" version 1\nsegment s user.is_new\n'


def test_test_passes_and_summarises(run: Run) -> None:
    code, out, _ = run("test", "--builtin-schema", str(POLICIES))
    assert code == 0
    assert out.splitlines()[-1].endswith(" passed, 0 failed")


def test_test_verbose_and_run_filter(run: Run, write: Callable[[str, str], Path]) -> None:
    path = write("good.sw", GOOD)
    code, out, _ = run("test", "--builtin-schema", "-v", str(path))
    assert code == 0
    assert out.splitlines() == [
        f"PASS mobile prefers b ({path}:11)",
        "    ok: c.s == b",
        "1 passed, 0 failed",
    ]
    # a filter that matches nothing is a typo, not a green run
    code, out, err = run("test", "--builtin-schema", "--run", "^nothing", str(path))
    assert (code, out) == (1, "")
    assert "no test name matches --run '^nothing'" in err


def test_test_failure_shows_actual_and_expected(
    run: Run, write: Callable[[str, str], Path]
) -> None:
    path = write("good.sw", GOOD.replace("expect c.s == b", "expect c.s == a"))
    code, out, _ = run("test", "--builtin-schema", str(path))
    assert code == 1
    assert out.splitlines() == [
        f"FAIL mobile prefers b ({path}:11)",
        '    line 13: c.s == a: got [b] (matched rules: "mobile")',
        "0 passed, 1 failed",
    ]


def test_test_bad_regex_is_usage_error(run: Run) -> None:
    code, _, err = run("test", "--run", "(", str(POLICIES))
    assert code == 2 and "not a regular expression" in err


def test_explain_text_and_json(run: Run, write: Callable[[str, str], Path]) -> None:
    signals = write("signals.json", json.dumps({"device.type": "mobile"}))
    path = write("good.sw", GOOD)
    code, out, _ = run("explain", "--builtin-schema", str(path), "--signals", str(signals))
    assert code == 0
    assert 'rule "mobile"' in out and "=> MATCHED" in out
    assert 'device.type == "mobile" -> true  (device.type = "mobile")' in out
    assert "slot s: allowed: a, b; preferred: b" in out
    code, out, _ = run(
        "explain", "--builtin-schema", str(path), "--signals", str(signals), "--format", "json"
    )
    document = json.loads(out)
    campaign = document["campaigns"][0]
    assert campaign["matched_rules"] == ["mobile"]
    assert campaign["compiled_agrees"] is True
    assert campaign["slots"]["s"]["preferred"] == ["b"]


def test_explain_usage_errors(run: Run, write: Callable[[str, str], Path]) -> None:
    path = write("good.sw", GOOD)
    broken = write("signals.json", "{not json")
    assert run("explain", str(path), "--signals", str(broken))[0] == 2
    wrong = write("wrong.json", json.dumps({"user.segments": [1, 2]}))
    code, _, err = run("explain", "--builtin-schema", str(path), "--signals", str(wrong))
    assert code == 2 and "holds strings only" in err
    fine = write("fine.json", "{}")
    code, _, err = run(
        "explain", "--builtin-schema", str(path), "--signals", str(fine), "--campaign", "zz"
    )
    assert code == 2 and "no campaign named 'zz'" in err


def test_bench_match_small(run: Run) -> None:
    code, out, _ = run(
        "bench", "match", "--rules", "300", "--contexts", "40", "--rounds", "1", "--json"
    )
    report = json.loads(out)
    assert code == 0 and report["agree"] is True
    assert report["rules"] == 300
    assert report["compiled_eligible_us"]["samples"] == 40
    assert report["reference_us"]["p50"] > 0
