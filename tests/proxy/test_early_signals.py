"""When signals are gathered: which policies select on the response, and the per-path memory.

The proxy end to end (late gathers, skipped gathers, metrics) is in test_live_policies.py.
"""

from __future__ import annotations

import pytest

from slotwise.dsl.compiled import CompiledPolicySet
from slotwise.dsl.loader import compile_sources
from slotwise.plugins.registry import load_schema
from slotwise.proxy.early_signals import EarlySignals

CAMPAIGN = """
campaign c{n} {{
  {applies}
  slot headline at "$.headline" {{
    variant a "A"
  }}
  optimize clicks
}}
"""


def _policy(*applies: str, segments: str = "") -> CompiledPolicySet:
    body = "".join(CAMPAIGN.format(n=n, applies=a) for n, a in enumerate(applies))
    text = f'policy "p" version 1\n{segments}\n{body}'
    policy, _ = compile_sources([("p.sw", text)], load_schema())
    return policy


@pytest.mark.parametrize(
    ("applies", "segments", "on_response"),
    [
        ('applies when ad.campaign_id == "x"', "", True),
        ('applies when ad.campaign_id in ["x", "y"] and not ad.format == "vast"', "", True),
        ("", "", True),  # no `applies when`: applies to every response
        ('applies when ad.campaign_id == "x" and device.type == "mobile"', "", False),
        ('applies when ad.campaign_id == "x" or request.path == "/ads"', "", False),
        ("applies when spring_ads", 'segment spring_ads: ad.campaign_id == "x"', True),
        ("applies when mobile", 'segment mobile: device.type == "mobile"', False),
        ("applies when event add_to_cart within 1h", "", False),  # behaviour: a provider's history
    ],
)
def test_a_campaign_selects_on_the_response_when_it_reads_only_ad_signals(
    applies: str, segments: str, on_response: bool
) -> None:
    policy = _policy(applies, segments=segments)
    assert policy.campaigns[0].selects_on_response is on_response
    assert policy.selects_on_response is on_response


def test_one_campaign_reading_provider_signals_makes_the_set_gather_early() -> None:
    policy = _policy('applies when ad.campaign_id == "x"', 'applies when device.type == "mobile"')
    assert policy.selects_on_response is False
    signals = EarlySignals()
    signals.observe("/footer", applied=False)
    assert signals.wanted(policy, "/footer")


def test_paths_without_a_campaign_skip_until_one_applies() -> None:
    policy = _policy('applies when ad.campaign_id == "x"')
    signals = EarlySignals()
    assert signals.wanted(policy, "/footer")  # nothing known yet: gather early
    signals.observe("/footer", applied=False)
    assert not signals.wanted(policy, "/footer")
    assert signals.wanted(policy, "/ad")  # other paths are unaffected
    signals.observe("/footer", applied=True)
    assert signals.wanted(policy, "/footer")


def test_a_new_policy_set_forgets_what_it_learned() -> None:
    first = _policy('applies when ad.campaign_id == "x"')
    second = _policy('applies when ad.campaign_id == "y"')
    signals = EarlySignals()
    signals.wanted(first, "/footer")
    signals.observe("/footer", applied=False)
    assert not signals.wanted(first, "/footer")
    assert signals.wanted(second, "/footer")  # the new set may apply there


def test_the_memory_is_bounded() -> None:
    policy = _policy('applies when ad.campaign_id == "x"')
    signals = EarlySignals(limit=3)
    signals.wanted(policy, "/")
    for n in range(3):
        signals.observe(f"/p{n}", applied=False)
    assert not signals.wanted(policy, "/p0")
    signals.observe("/p3", applied=False)  # full: starts over, costing one early gather each
    assert signals.wanted(policy, "/p0")
    assert not signals.wanted(policy, "/p3")
