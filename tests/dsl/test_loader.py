from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from slotwise.dsl.compiled import CompiledPolicySet
from slotwise.dsl.errors import PolicyError
from slotwise.dsl.loader import load_policy_set
from slotwise.dsl.location import JsonPathLocation
from slotwise.plugins.schema import Context, SignalSchema

SPRING = """policy "spring" version 1

segment young_mobile: user.age in 18..24 and device.type == "mobile"

campaign spring_sale {
  applies when ad.campaign_id == "cmp-spring"
  slot headline at "$.creative.headline" {
    variant h1 "Spring deals are here"
    variant h2 "Save 20% this week" [tone: "urgent"]
    variant h_de "Frühlingsangebote"
  }
  slot image at "$.creative.image_url" {
    variant beach "https://cdn.example/beach.jpg"
    variant city "https://cdn.example/city.jpg"
  }
  rule "short copy for young mobile" when young_mobile then prefer headline h2
  rule "no beach at night" when time.hour in 20..23 then exclude image beach
  rule "German copy" when geo.country == "DE" then pin headline h_de and boost image city by 1.5
  optimize clicks + 10 * conversions
  explore epsilon 5%
  holdout 10%
}
"""


def ctx(**signals: object) -> Context:
    return Context({k.replace("__", "."): v for k, v in signals.items()}, 1_000_000.0)  # type: ignore[misc]


def test_load_policy_set_compiles_a_campaign(
    write: Callable[[str, str], Path], schema: SignalSchema
) -> None:
    policy = load_policy_set([write("spring.sw", SPRING)], schema)
    assert isinstance(policy, CompiledPolicySet)
    campaign = policy.campaign("spring_sale")
    assert [s.name for s in campaign.slots] == ["headline", "image"]
    headline = campaign.slots[0]
    assert headline.location == JsonPathLocation(("creative", "headline"), "$.creative.headline")
    assert headline.variant("h2").attributes == {"tone": "urgent"}
    assert campaign.holdout == pytest.approx(0.1)
    assert (campaign.explore.kind, campaign.explore.parameter) == ("epsilon", 0.05)
    assert [(t.metric, t.weight) for t in campaign.goal.terms] == [
        ("clicks", 1.0),
        ("conversions", 10.0),
    ]
    assert len(policy.version) == 16


def test_select_and_eligible(write: Callable[[str, str], Path], schema: SignalSchema) -> None:
    policy = load_policy_set([write("spring.sw", SPRING)], schema)
    young = ctx(ad__campaign_id="cmp-spring", user__age=21, device__type="mobile")
    assert policy.select(young) is policy.campaign("spring_sale")
    assert policy.select(ctx(ad__campaign_id="other")) is None
    eligibility = policy.campaign("spring_sale").eligible(young)
    assert eligibility["headline"].preferred == ("h2",)
    assert eligibility["headline"].choices == ("h2",)
    assert eligibility["image"].variants == ("beach", "city")
    assert eligibility.matched_rules == ("short copy for young mobile",)

    german_night = ctx(geo__country="DE", time__hour=21)
    eligibility = policy.campaign("spring_sale").eligible(german_night)
    assert eligibility["headline"].pinned == "h_de"
    assert eligibility["headline"].variants == ("h_de",)
    assert eligibility["image"].variants == ("city",)
    assert eligibility["image"].boosts == {"city": 1.5}
    assert eligibility.matched_rules == ("no beach at night", "German copy")


def test_compiled_objects_are_immutable(
    write: Callable[[str, str], Path], schema: SignalSchema
) -> None:
    policy = load_policy_set([write("spring.sw", SPRING)], schema)
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.campaigns[0].holdout = 0.5  # type: ignore[misc]


def test_errors_from_several_files_are_reported_together(
    write: Callable[[str, str], Path], schema: SignalSchema
) -> None:
    good = write("a/spring.sw", SPRING)
    write("a/broken.sw", 'policy "b" version 1\ncampaign x { holdout 10 }\n')
    write("a/typo.sw", 'policy "c" version 1\nsegment s: geo.contry == "DE"\n')
    with pytest.raises(PolicyError) as caught:
        load_policy_set([good.parent], schema)
    codes = [(Path(d.file).name, d.code) for d in caught.value.diagnostics]
    assert codes == [("broken.sw", "syntax_error")]  # checking waits for a clean parse
    with pytest.raises(PolicyError) as caught:
        load_policy_set([good, good.parent / "typo.sw"], schema)
    (diag,) = caught.value.diagnostics
    assert diag.code == "unknown_signal"
    assert 'did you mean "geo.country"' in diag.message
    assert (diag.line, diag.column) == (2, 12)


def test_duplicate_names_across_files(
    write: Callable[[str, str], Path], schema: SignalSchema
) -> None:
    first = write("one.sw", SPRING)
    second = write("two.sw", SPRING.replace('"spring"', '"spring2"'))
    with pytest.raises(PolicyError) as caught:
        load_policy_set([first, second], schema)
    assert {d.code for d in caught.value.diagnostics} == {"duplicate_name"}
    assert all(d.file == str(second) for d in caught.value.diagnostics)


def test_missing_path_is_an_error(tmp_path: Path, schema: SignalSchema) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy_set([tmp_path / "nope.sw"], schema)
    assert caught.value.diagnostics[0].code == "unreadable_file"


def test_empty_folder_is_an_error(tmp_path: Path, schema: SignalSchema) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(PolicyError) as caught:
        load_policy_set([tmp_path / "empty"], schema)
    assert caught.value.diagnostics[0].code == "no_policy_files"


def test_not_utf8_is_an_error(tmp_path: Path, schema: SignalSchema) -> None:
    path = tmp_path / "latin1.sw"
    path.write_bytes('policy "caf\xe9" version 1\n'.encode("latin-1"))
    with pytest.raises(PolicyError) as caught:
        load_policy_set([path], schema)
    assert caught.value.diagnostics[0].code == "unreadable_file"
    assert "UTF-8" in caught.value.diagnostics[0].message


def test_warnings_are_kept_on_the_compiled_set(
    write: Callable[[str, str], Path], schema: SignalSchema
) -> None:
    text = SPRING.replace(
        "  optimize clicks",
        '  rule "never" when time.hour > 30 then prefer headline h1\n  optimize clicks',
    )
    policy = load_policy_set([write("w.sw", text)], schema)
    assert [w.code for w in policy.warnings] == ["never_fires"]


def test_the_request_path_never_imports_the_parser() -> None:
    import subprocess
    import sys

    code = (
        "import sys, slotwise.dsl.compiled, slotwise.dsl.matcher, slotwise.dsl.conditions; "
        "print(sorted(m for m in sys.modules if m == 'lark' or m.startswith('lark.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
