from __future__ import annotations

from pathlib import Path

import pytest

from slotwise.dsl.conditions import structure
from slotwise.dsl.fmt import format_source
from slotwise.dsl.parser import parse_policy

GOLDEN = Path(__file__).parent / "fmt"
REPO = Path(__file__).resolve().parents[2]
CASES = sorted(p.name for p in GOLDEN.glob("*.sw"))


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str) -> None:
    source = (GOLDEN / name).read_text(encoding="utf-8")
    expected = (GOLDEN / f"{name}.formatted").read_text(encoding="utf-8")
    assert format_source(source, name) == expected


@pytest.mark.parametrize("name", CASES)
def test_idempotent_and_meaning_preserving(name: str) -> None:
    source = (GOLDEN / name).read_text(encoding="utf-8")
    once = format_source(source, name)
    assert format_source(once, name) == once
    before, after = parse_policy(source), parse_policy(once)
    assert structure(before.items) == structure(after.items)
    assert [c.text for c in before.comments] == [c.text for c in after.comments]


def test_example_policies_are_formatted() -> None:
    for path in sorted((REPO / "policies").glob("*.sw")):
        text = path.read_text(encoding="utf-8")
        assert format_source(text, str(path)) == text, f"run: slotwise fmt {path}"


def test_strings_round_trip_with_escapes() -> None:
    source = 'policy "a \\"quoted\\" \\\\ name" version 1\n'
    assert format_source(source) == source
    assert parse_policy(source).header.name == 'a "quoted" \\ name'


def test_minimal_parentheses() -> None:
    source = (
        'policy "p" version 1\n\n'
        "segment s: ((user.is_new and (user.age > 3 or user.age < 1)) or not (user.visits == 2))\n"
    )
    assert format_source(source).splitlines()[-1] == (
        "segment s: user.is_new and (user.age > 3 or user.age < 1) or not user.visits == 2"
    )
