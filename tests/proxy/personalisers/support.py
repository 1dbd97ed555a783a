"""Run the personalisers on one real document, without a server: compiled policies, the real
adapters, the rule chooser with a seeded RNG, real metrics and click signer."""

from __future__ import annotations

import json
import random
from typing import Any

from slotwise.dsl.compiled import CompiledPolicySet
from slotwise.dsl.loader import compile_sources
from slotwise.plugins.gather import Gathered
from slotwise.plugins.registry import load_schema
from slotwise.proxy.adapters import parse_response
from slotwise.proxy.chooser import RuleChooser
from slotwise.proxy.decide import Engine, personalise
from slotwise.proxy.events.decisions import DecisionLog
from slotwise.proxy.exchange import Exchange
from slotwise.proxy.metrics import ProxyMetrics
from slotwise.proxy.personalisers import Personaliser, Pipeline
from slotwise.proxy.policy_snapshot import PolicySnapshot
from slotwise.proxy.state.memory import MemoryStore
from slotwise.proxy.tracking import ClickSigner
from slotwise.types import NoHistory

SCOPE: dict[str, Any] = {"headers": [(b"host", b"proxy.test")], "scheme": "http"}


def compile_policy(body: str) -> CompiledPolicySet:
    policy, _ = compile_sources([("t.sw", 'policy "t" version 1\n' + body)], load_schema())
    return policy


def engine(*steps: Personaliser) -> Engine:
    metrics = ProxyMetrics()
    built = Engine(
        upstream=None,  # type: ignore[arg-type]
        policies=PolicySnapshot(None, load_schema(), metrics),
        chooser=RuleChooser(random.Random(7)),
        # personalise() records nothing itself; a real log (never started): the compiled
        # Engine takes only a DecisionLog there
        decision_log=DecisionLog(MemoryStore()),
        metrics=metrics,
        signer=ClickSigner(b"k" * 32, "https://proxy.example"),
        allowed_hosts=frozenset({b"proxy.test"}),  # the Host these tests send
    )
    if steps:
        built.personalisers = Pipeline(steps)
    return built


def run(
    engine: Engine,
    policy: CompiledPolicySet,
    document: Any,
    *,
    content_type: bytes = b"application/json",
    request: bytes = b"",
    signals: dict[str, Any] | None = None,
    scope: dict[str, Any] | None = None,
) -> Exchange:
    """Personalise one response body (a dict is sent as JSON) and return the exchange."""
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    gathered = Gathered(signals or {}, False, None, NoHistory())
    exchange = Exchange(scope or SCOPE, 0.0, policy=policy, gathered=gathered)
    exchange.document = parse_response(content_type, body, request)
    exchange.codings = []
    personalise(engine, exchange)
    return exchange


def served(exchange: Exchange) -> Any:
    """The rewritten JSON document (the upstream's when nothing changed)."""
    assert exchange.out is not None, exchange.reason
    return json.loads(exchange.out)


def campaigns_of(exchange: Exchange) -> list[str]:
    return [record.campaign for record, _ in exchange.records or ()]
