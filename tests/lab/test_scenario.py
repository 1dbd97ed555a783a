"""Scenario files: every bad value is refused when loading, naming the file, table and key.

The bad scenarios are the default scenario's text with one change each (CASES), so that each
case shows exactly what is wrong and everything else stays valid.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from slotwise.lab.scenario import load_scenario
from slotwise.proxy.bandit.errors import BanditError

SCENARIOS = Path(__file__).resolve().parents[2] / "examples" / "scenarios"
POLICY = SCENARIOS / "segment-winners.sw"
# the policy by absolute path, so that the changed copy works from any directory
DEFAULT = (
    (SCENARIOS / "segment-winners.toml")
    .read_text("utf-8")
    .replace('policy = "segment-winners.sw"', f"policy = {str(POLICY)!r}")
)
# a campaign declared in the scenario itself, without a policy file
INLINE = """
[campaign]
name = "inline"
explore = { kind = "epsilon", parameter = 0.1 }
goal = { clicks = 1 }
[[campaign.slots]]
name = "image"
variants = 3
[[campaign.slots]]
name = "cta"
variants = ["buy", "see"]
[upstream]
image = "image_0"
cta = "buy"
[[segments]]
name = "all"
share = 1.0
base_ctr = 0.2
"""

Change = Callable[[str], str]


def _set(key: str, value: str) -> Change:
    """The first ``key = ...`` line (top level or the first segment) set to ``value``."""

    def change(text: str) -> str:
        changed, count = re.subn(rf"^{re.escape(key)} = .*$", value, text, count=1, flags=re.M)
        assert count == 1, key
        return changed

    return change


def _drop(key: str) -> Change:
    return _set(key, "")


def _replace(old: str, new: str) -> Change:
    def change(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return change


def _instead_of_table(table: str, line: str) -> Change:
    """Every [table] / [[table]] section removed and ``line`` put first, at the top level."""

    def change(text: str) -> str:
        kept, dropping = [], False
        for row in text.splitlines():
            if row.startswith("["):
                dropping = row.strip("[]") == table
            if not dropping:
                kept.append(row)
        return line + "\n" + "\n".join(kept) + "\n"

    return change


AGES = '"user.age" = [18, 24]'
COUNTRIES = '"geo.country" = ["DE", "FR", "US"]'

BAD = "bad_scenario"
SIGNAL = "must be a value (string, number or boolean), a non-empty list of values to pick from"
LOSER = "[truth] loser_factor must be a pair [low, high] of numbers with 0 <= low <= high <= 1"

CASES: list[tuple[Change, str, str]] = [
    # values of the wrong shape that used to crash
    (_instead_of_table("campaign", 'campaign = "x"'), BAD, '[campaign] must be a table, got "x"'),
    (
        _instead_of_table("segments", 'segments = { name = "all", share = 1.0, base_ctr = 0.3 }'),
        BAD,
        "[[segments]] must be an array of tables (one [[segments]] per entry), got a table",
    ),
    (_set("winners", 'winners = "x"'), BAD, 'young_mobile: winners must be a table, got "x"'),
    (
        _set("conversion_slot", 'conversion_slot = "nope"'),
        BAD,
        'conversion_slot must be a slot of the campaign (image, headline, cta), got "nope"',
    ),
    (_set("conversion_slot", "conversion_slot = 3"), BAD, "conversion_slot must be a slot"),
    (_set("publish_every", "publish_every = 0"), BAD, "publish_every must be a whole number"),
    (_set("users", "users = 0"), BAD, "users must be a whole number of at least 1 and at most"),
    (_set("users", "users = -3"), BAD, "users must be a whole number of at least 1"),
    (_set("users", "users = 99_999_999_999"), BAD, "at least 1 and at most 1,000,000, got"),
    (
        _replace(AGES, '"user.age" = [24, 18]'),
        BAD,
        '[[segments]] young_mobile: signals."user.age" must be an integer range [low, high] '
        "with low <= high, got [24, 18]",
    ),
    (_replace(COUNTRIES, '"geo.country" = []'), BAD, f'signals."geo.country" {SIGNAL}'),
    (_replace(COUNTRIES, '"geo.country" = [["DE"], "FR"]'), BAD, f'"geo.country" {SIGNAL}'),
    (
        _replace(COUNTRIES, '"geo.country" = { de = 1 }'),
        BAD,
        "or an integer range [low, high], got a table",
    ),
    (_set("signals", "signals = 3"), BAD, "young_mobile: signals must be a table, got 3"),
    # impossible values that used to be accepted
    (
        _set("report_every", "report_every = 0"),
        BAD,
        "report_every must be a whole number of at least 1, got 0",
    ),
    (_set("report_every", "report_every = -5"), BAD, "report_every must be a whole number"),
    (
        _set("impressions", "impressions = 0"),
        BAD,
        "impressions must be a whole number of at least 1",
    ),
    (_set("impressions", "impressions = 2.5"), BAD, "impressions must be a whole number"),
    (_set("window", "window = -1.0"), BAD, "window must be a number of at least 0, got -1.0"),
    (_set("window", "window = inf"), BAD, "window must be a number of at least 0, got inf"),
    (
        _set("base_ctr", "base_ctr = 3.0"),
        BAD,
        "[[segments]] young_mobile: base_ctr must be a number above 0 and at most 1, got 3.0",
    ),
    (_set("base_ctr", "base_ctr = -0.1"), BAD, "base_ctr must be a number above 0 and at most 1"),
    (
        _set("base_ctr", "base_ctr = 0"),
        BAD,
        "base_ctr must be a number above 0 and at most 1, got 0",
    ),
    (
        _set("conversion", "conversion = 1.5"),
        BAD,
        "young_mobile: conversion must be a number between 0 and 1",
    ),
    (
        _set("consent_share", "consent_share = 1.5"),
        BAD,
        "consent_share must be a number between 0 and 1",
    ),
    (
        _set("share", "share = -0.3"),
        BAD,
        "young_mobile: share must be a number of at least 0, got -0.3",
    ),
    (_set("share", 'share = "0.3"'), BAD, 'share must be a number of at least 0, got "0.3"'),
    (_set("share", "share = 0.5"), BAD, "[[segments]] shares must add up to 1, they add up to 1.2"),
    (_set("loser_factor", "loser_factor = [0.1, 0.2, 0.3]"), BAD, f"{LOSER}, got [0.1, 0.2, 0.3]"),
    (_set("loser_factor", "loser_factor = [0.55, 0.15]"), BAD, LOSER),
    (_set("loser_factor", "loser_factor = [-0.1, 0.5]"), BAD, LOSER),
    (_set("loser_factor", 'loser_factor = ["a", "b"]'), BAD, LOSER),
    (
        _set("upstream_factor", "upstream_factor = -2"),
        BAD,
        "[truth] upstream_factor must be a number between 0 and 1",
    ),
    (_set("upstream_factor", "upstream_factor = 1.5"), BAD, "[truth] upstream_factor must be"),
    (
        _set("cta_penalty", "cta_penalty = 7"),
        BAD,
        "[truth] cta_penalty must be a number between 0 and 1",
    ),
    (_set("seed", 'effect = "no"'), BAD, 'effect must be true or false, got "no"'),
    (_set("seed", "seed = true"), BAD, "seed must be a whole number, got true"),
    (
        _set("combine", 'combine = "sum"'),
        BAD,
        '[truth] combine must be "product" or "mean", got "sum"',
    ),
    # errors that named the wrong place, or nothing useful
    (
        _drop("base_ctr"),
        BAD,
        "[[segments]] young_mobile: base_ctr is missing: it must be a number above 0 and at most 1",
    ),
    (
        _set("base_ctr", 'base_ctr = "x"'),
        BAD,
        'young_mobile: base_ctr must be a number above 0 and at most 1, got "x"',
    ),
    (_instead_of_table("truth", "truth = 3"), BAD, "[truth] must be a table, got 3"),
    (
        _set("image", 'image = "image_99"'),
        BAD,
        "[upstream] image must be a variant of slot image "
        '(image_0, image_1, image_2, ... image_9, 10 in all), got "image_99"',
    ),
    (
        _set("cta", 'size = "cta_0"'),
        BAD,
        "[upstream] must name one variant for each slot (image, headline, cta), "
        "it names image, headline, size",
    ),
    (
        _replace('cta = "cta_1" }', 'cta = "cta_99" }'),
        BAD,
        "young_mobile: winners.cta must be a variant of slot cta",
    ),
    (
        _replace('cta = "cta_1" }', 'size = "cta_1" }'),
        BAD,
        "young_mobile: winners.size: the campaign has no slot",
    ),
    (
        _replace('name = "young_desktop"', 'name = "young_mobile"'),
        BAD,
        "young_mobile: a second segment of that name",
    ),
    (
        _replace('name = "older_desktop"', "name = 3"),
        BAD,
        "[[segments]] #4: name must be a string, got 3",
    ),
    (
        _replace("conversion = 0.08", "conversoin = 0.08"),
        BAD,
        "unknown setting conversoin; did you mean conversion?",
    ),
    (_replace('name = "spring_sale"', 'name = "autumn"'), BAD, "[campaign] name: policy"),
    (
        _replace('name = "spring_sale"', 'name = "spring_sale"\nholdout = 0.2'),
        BAD,
        "[campaign] unknown setting holdout",
    ),
    # a campaign declared in the scenario itself
    (
        lambda _: INLINE.replace("variants = 3", "variants = 1"),
        BAD,
        "[[campaign.slots]] image: variants must be a count of at least 2 or a list of at least "
        "two distinct names, got 1",
    ),
    (lambda _: INLINE.replace('["buy", "see"]', '["buy", "buy"]'), BAD, "cta: variants must be"),
    (
        lambda _: INLINE.replace('name = "inline"', 'name = "../up"'),
        BAD,
        "[campaign] name must be letters, digits, _ . - (at most 128, not starting with _ . -), "
        'got "../up"',
    ),
    (
        lambda _: INLINE.replace('name = "cta"', 'name = "image"'),
        BAD,
        "image: a second slot of that name",
    ),
    (
        lambda _: INLINE.replace('"epsilon"', '"sometimes"'),
        BAD,
        "[campaign] unknown exploration 'sometimes'",
    ),
    (
        lambda _: INLINE.replace("parameter = 0.1", "parameter = 2"),
        BAD,
        "[campaign] epsilon must be in 0..1",
    ),
    (
        lambda _: INLINE.replace("clicks = 1", "likes = 1"),
        BAD,
        "[campaign] unknown goal term(s) likes",
    ),
    (
        lambda _: INLINE.replace("clicks = 1", 'clicks = "1"'),
        BAD,
        "[campaign] goal.clicks must be a number",
    ),
    (
        lambda _: INLINE.replace('name = "all"\n', ""),
        BAD,
        "[[segments]] #1: name is missing: it must be a string",
    ),
    (
        lambda _: INLINE.replace("[[segments]]", "[[segment]]"),
        BAD,
        "unknown setting segment; did you mean segments?",
    ),
]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text(text, "utf-8")
    return path


def test_the_unchanged_scenarios_load(tmp_path: Path) -> None:
    assert load_scenario(_write(tmp_path, DEFAULT)).campaign.name == "spring_sale"
    assert load_scenario(_write(tmp_path, INLINE)).campaign.name == "inline"
    for example in sorted(SCENARIOS.glob("*.toml")):
        if 'kind = "triggers"' in example.read_text():
            continue  # lab/trigger_scenario.py's (tests/lab/test_trigger_scenario.py)
        assert load_scenario(example).segments


@pytest.mark.parametrize(("change", "code", "fragment"), CASES, ids=[c[2][:50] for c in CASES])
def test_a_bad_value_is_refused_with_where_and_what(
    tmp_path: Path, change: Change, code: str, fragment: str
) -> None:
    path = _write(tmp_path, change(DEFAULT))
    with pytest.raises(BanditError) as caught:
        load_scenario(path)
    assert caught.value.code == code
    assert caught.value.message.startswith(f"{path}: ")
    assert fragment in caught.value.message


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "garbage.bin"
    path.write_bytes(b'name = "x"\n\xff\xfe\xda')
    with pytest.raises(BanditError) as caught:
        load_scenario(path)
    assert caught.value.code == "bad_scenario"
    assert f"{path}: not UTF-8 text (byte 11)" in caught.value.message


def test_the_truth_drawn_from_the_seed_is_unchanged(tmp_path: Path) -> None:
    # the validation must not move the seeded draws: results of past runs stay comparable
    segment = load_scenario(_write(tmp_path, DEFAULT)).segments[0]
    assert segment.factors["image"]["image_3"] == 1.0
    assert segment.factors["image"]["image_0"] == 0.4
    assert segment.factors["image"]["image_1"] == pytest.approx(0.27953, abs=1e-5)
