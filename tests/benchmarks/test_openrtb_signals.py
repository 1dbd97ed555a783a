"""What reading the OpenRTB bid request costs per request, and what it costs other requests.

Run with ``.venv/bin/pytest -m benchmark tests/benchmarks/test_openrtb_signals.py -s``. The
workload is 3,000 bid requests made from the OpenRTB 2.6 specification's five published
request examples, each with its own user and impression ids and, in turn, no privacy signal,
a TC string, a GPP string (TCF EU v2 section) and a US Privacy string, all POSTed by an
exchange's HTTP client. Per request, timed one by one (p50 and p99 of 3,000, after a warm-up):

- decode: ``RequestInfo.build`` with the body, then the first ``bid_request`` (the JSON decode);
- gather: ``RequestInfo.build`` and ``gather`` with the built-in providers, as the proxy does,
  for the requests whose bid request decides contextual (no privacy signal, ``1YNN``) and for
  those it decides personal (the TC string, the GPP string), which also run ``ortb_user``;
- the same gather for the same requests without their bodies (what the proxy did before: all
  contextual);
- a storefront GET (no body) with the built-in providers, and with all but ``ortb`` and
  ``ortb_user``: what the bid-request providers add to requests that are not bid requests.

``profile`` is left out: it reads the state store for personal requests, whatever they are.
"""

from __future__ import annotations

import asyncio
import copy
import json
import statistics
import time
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

import pytest

from slotwise.plugins.gather import gather
from slotwise.plugins.loaded import ProviderSet
from slotwise.plugins.request import RequestInfo
from slotwise.testing.provider import provider_set
from tests.plugins.openrtb_requests import (
    CONSENTING,
    EXCHANGE_AGENT,
    NOW,
    PUBLISHED_REQUESTS,
    VENDOR,
)

REQUESTS, WARM = 3_000, 300
HEADERS = [(b"user-agent", EXCHANGE_AGENT.encode()), (b"content-type", b"application/json")]
BROWSER = [
    (
        b"user-agent",
        b"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
        b"(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
    ),
    (b"accept-language", b"de-DE,de;q=0.9"),
    (b"cf-ipcountry", b"DE"),
]
CONFIG = {"consent": {"vendor_id": VENDOR}}
PROVIDERS = "builtins,-profile"


def _bodies() -> list[tuple[bytes, bool]]:
    published = [json.loads(path.read_text()) for path in PUBLISHED_REQUESTS]
    regs: list[tuple[dict[str, Any], str | None]] = [
        ({}, None),
        ({"gdpr": 1}, CONSENTING["tc"]),
        ({"gdpr": 1, "gpp": f"DBABMA~{CONSENTING['tc']}", "gpp_sid": [2]}, None),
        ({"us_privacy": "1YNN"}, None),
    ]
    bodies: list[tuple[bytes, bool]] = []
    for i in range(REQUESTS):
        request = copy.deepcopy(published[i % len(published)])
        request["id"] = f"req-{i}"
        request["imp"][0]["id"] = str(i)
        request.setdefault("user", {})["id"] = f"user-{i}"
        extra, consent = regs[i // len(published) % len(regs)]
        if extra:
            request["regs"] = extra
        if consent:
            request["user"]["consent"] = consent
        bodies.append((json.dumps(request).encode(), consent is not None or "gpp" in extra))
    return bodies


def _build(body: bytes, headers: list[tuple[bytes, bytes]], method: str = "POST") -> RequestInfo:
    return RequestInfo.build(
        method, "/openrtb2/auction", headers=headers, client_ip="198.51.100.7",
        received_at=NOW, body=body,
    )  # fmt: skip


async def _timed(runs: list[Callable[[], Coroutine[Any, Any, Any]]]) -> list[float]:
    for run in runs[:WARM]:
        await run()
    samples = []
    for run in runs:
        started = time.perf_counter()
        await run()
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def _row(label: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    return f"{label:<58} p50 {p50:7.1f} us   p99 {p99:7.1f} us"


async def _decode(body: bytes) -> None:
    assert _build(body, HEADERS).bid_request is not None


def _gathering(
    providers: ProviderSet, body: bytes, headers: list[tuple[bytes, bytes]], method: str = "POST"
) -> Callable[[], Coroutine[Any, Any, Any]]:
    return lambda: gather(providers, _build(body, headers, method))


@pytest.mark.benchmark
async def test_what_a_bid_request_costs() -> None:
    bodies = _bodies()
    contextual = [body for body, personal in bodies if not personal]
    personal = [body for body, granted in bodies if granted]
    rows = [
        _row("decode (build + bid_request)", await _timed([partial(_decode, b) for b, _ in bodies]))
    ]
    async with provider_set(PROVIDERS, config=CONFIG) as providers:
        with_body = await _timed([_gathering(providers, b, HEADERS) for b in contextual])
        granted = await _timed([_gathering(providers, b, HEADERS) for b in personal])
        without = await _timed([_gathering(providers, b"", HEADERS) for b in contextual])
        storefront = await _timed(
            [_gathering(providers, b"", BROWSER, "GET") for _ in range(REQUESTS)]
        )
        assert providers.by_name["ortb_user"].metrics.fetches == len(personal) + WARM
    async with provider_set(f"{PROVIDERS},-ortb,-ortb_user", config=CONFIG) as providers:
        storefront_before = await _timed(
            [_gathering(providers, b"", BROWSER, "GET") for _ in range(REQUESTS)]
        )
    rows += [
        _row("gather, bid request read, contextual", with_body),
        _row("gather, bid request read, personal (+ ortb_user)", granted),
        _row("gather, the same requests without their bodies", without),
        _row("storefront GET, built-ins", storefront),
        _row("storefront GET, built-ins but ortb and ortb_user", storefront_before),
    ]
    extra = statistics.median(with_body) - statistics.median(without)
    rows.append(f"a bid request's extra cost (p50, contextual): {extra:.1f} us")
    print("\n" + "\n".join(rows))
    assert statistics.median(with_body) > 0


if __name__ == "__main__":  # pragma: no cover
    asyncio.run(test_what_a_bid_request_costs())
