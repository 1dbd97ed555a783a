"""What every step that serves nothing yet must do: run only when the policy set has its
kind, name the locations it will write, and leave the document and the records alone."""

from __future__ import annotations

from typing import Any

from slotwise.dsl.compiled import CompiledPolicySet
from slotwise.proxy.personalisers import Personaliser
from tests.proxy.personalisers.support import compile_policy, engine, run

PAGE = {
    "placement": "home",
    "hero": {"title": "Welcome"},
    "offer": "none",
    "items": [{"sku": "a"}, {"sku": "b"}],
    "products": [{"sku": "c"}],
}

CAMPAIGN_ONLY = 'campaign c { slot s at "$.hero.title" { variant a "A" } }'


class Spy:
    """Wraps a step and counts its runs."""

    def __init__(self, step: Personaliser) -> None:
        self.step = step
        self.kind = step.kind
        self.runs = 0

    def wanted(self, policy: CompiledPolicySet) -> bool:
        return self.step.wanted(policy)

    def locations(self, policy: CompiledPolicySet) -> Any:
        return self.step.locations(policy)

    def personalise(self, proxy: Any, exchange: Any) -> None:
        self.runs += 1
        self.step.personalise(proxy, exchange)


def check_shell(step: Personaliser, with_kind: str, location: str) -> None:
    policy = compile_policy(with_kind)
    assert step.wanted(policy)
    assert not step.wanted(
        compile_policy('campaign c { slot s at "$.hero.title" { variant a "A" } }')
    )
    assert [at.text for _, at in step.locations(policy)] == [location]
    spy = Spy(step)
    exchange = run(engine(spy), policy, PAGE)
    assert spy.runs == 1
    assert exchange.out is None and exchange.records is None and not exchange.changed
    assert exchange.reason == "no_campaign_applies"
