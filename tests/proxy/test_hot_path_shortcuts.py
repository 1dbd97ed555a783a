"""The hot path's shortcuts give exactly what the plain code they replace gives.

Each test pins one shortcut taken for speed (docs/benchmarks.md, "Proxy") to its reference:
the precomputed HMAC states to ``hmac``, batched decision ids to ``secrets.token_urlsafe``,
the uniform draw to the boost-weighted walk, the JSON path fast path to the recursive walk,
the head timer to the 504 it replaced, the cached device classification to ``classify``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import time

import pytest

from slotwise.dsl.compiled import SlotEligibility
from slotwise.dsl.location import JsonPathLocation, Wildcard, parse_location
from slotwise.plugins.builtin import device
from slotwise.proxy.adapters.json import _walk, find
from slotwise.proxy.choice import SlotChoice
from slotwise.proxy.chooser import pick_variant
from slotwise.proxy.tracking import ClickSigner, new_decision_id
from slotwise.proxy.upstream import Origin, PoolSettings, UpstreamError, UpstreamPool
from tests.proxy.support import Canned, upstream_server


@pytest.mark.parametrize("key_length", [16, 32, 63, 64, 65, 200])
def test_click_signature_is_hmac_sha256(key_length: int) -> None:
    key = bytes(range(256))[:key_length]
    signer = ClickSigner(key, "https://proxy.example")
    for decision_id, target in [("d1", "https://shop.example/x?a=1&b=ü"), ("", "http://t")]:
        mac = hmac.new(key, f"{decision_id}\n{target}".encode(), hashlib.sha256).digest()
        expected = base64.urlsafe_b64encode(mac[:18]).decode("ascii")
        assert signer.signature(decision_id, target) == expected
        assert signer.verify(decision_id, target, expected)
        assert signer.redirect(decision_id, target).endswith(f"&s={expected}")


def test_tracker_urls_per_public_origin() -> None:
    signer = ClickSigner(b"k" * 32, "https://proxy.example/")
    own = signer.trackers("abc")
    assert own.impression == "https://proxy.example/_sw/px?t=impression&did=abc"
    assert own.click == "https://proxy.example/_sw/px?t=click&did=abc"
    assert own.click_redirect_base == "https://proxy.example/_sw/click"
    other = signer.trackers("a b", "http://other.example/")
    assert other.impression == "http://other.example/_sw/px?t=impression&did=a%20b"
    assert other.signer.redirect("d", "https://t").startswith("http://other.example/_sw/click?")
    assert signer.trackers("abc") == own  # the cached prefixes give the same URLs
    # the last id quoted is kept for the click redirect: alternating ids get their own
    for did, quoted in [("a b", "a%20b"), ("abc", "abc"), ("a b", "a%20b"), ("", "")]:
        assert signer.trackers(did).click.endswith(f"&did={quoted}")
        assert f"?d={quoted}&u=" in signer.redirect(did, "https://t")


def test_decision_ids_are_fresh_url_safe_tokens() -> None:
    ids = [new_decision_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{16}", i) for i in ids)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_worker_never_reuses_the_parents_ids() -> None:
    new_decision_id()  # the parent now holds a batch
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, "".join(new_decision_id() for _ in range(300)).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 1 << 16).decode()
    os.close(read)
    os.waitpid(pid, 0)
    mine = {new_decision_id() for _ in range(300)}
    theirs = {child[i : i + 16] for i in range(0, len(child), 16)}
    assert len(theirs) == 300 and not mine & theirs


def _walk_choice(slot: str, rules: SlotEligibility, u: float) -> SlotChoice:
    """The boost-weighted walk, as pick_variant did it for every slot before the shortcut."""
    candidates = rules.choices
    weights = [rules.boosts.get(name, 1.0) for name in candidates]
    total = sum(weights)
    running = 0.0
    for name, weight in zip(candidates, weights, strict=True):
        running += weight
        if u * total < running:
            return SlotChoice(slot, name, weight / total, candidates)
    return SlotChoice(slot, candidates[-1], weights[-1] / total, candidates)


@pytest.mark.parametrize("count", [2, 3, 5, 7, 10])
def test_uniform_draw_is_the_weighted_walk_with_unit_weights(count: int) -> None:
    rules = SlotEligibility(tuple(f"v{i}" for i in range(count)))
    grid = [i / 1000 for i in range(1000)]
    edges = [k / count for k in range(count)] + [1 - 1e-16, 0.9999999999999999, 0.0]
    nudged = [x + d for x in edges for d in (-1e-16, 1e-16) if 0 <= x + d < 1]
    for u in grid + edges + nudged:
        assert pick_variant("s", rules, u) == _walk_choice("s", rules, u), u


def test_boosted_draws_still_walk_the_weights() -> None:
    rules = SlotEligibility(("a", "b", "c"), boosts={"b": 3.0})
    assert pick_variant("s", rules, 0.1) == SlotChoice("s", "a", 0.2, ("a", "b", "c"))
    assert pick_variant("s", rules, 0.5) == SlotChoice("s", "b", 0.6, ("a", "b", "c"))


DOCUMENT = {
    "a": {"b": "x", "list": ["p", "q", {"deep": "r"}]},
    "items": [{"t": "1"}, {"t": "2"}, {"u": "3"}],
    "s": "top",
}


@pytest.mark.parametrize(
    "path",
    [
        "$.a.b",
        "$.a.missing",
        "$.s",
        "$.s.x",
        "$.a.list[1]",
        "$.a.list[2].deep",
        "$.a.list[9]",
        "$.items[*].t",
        "$.items[0].t",
        '$["a"]["b"]',
    ],
)
def test_json_path_fast_path_finds_what_the_walk_finds(path: str) -> None:
    location = parse_location(path)
    assert isinstance(location, JsonPathLocation)
    walked: list[tuple[object, str | int]] = []
    _walk(DOCUMENT, location.steps, 0, walked)
    assert find(DOCUMENT, location.steps) == walked
    assert find(DOCUMENT, list(location.steps)) == walked


def test_json_path_plans_are_kept_by_path_and_stay_bounded() -> None:
    from slotwise.proxy.adapters import json as adapter

    wild = ("items", Wildcard(), "u")
    for _ in range(2):  # a path with [*] has no plan, remembered as such: the walk both times
        assert find(DOCUMENT, wild) == [(DOCUMENT["items"][2], "u")]  # type: ignore[index]
    for n in range(5000):  # more paths than are kept: the memo is emptied, not overfilled
        assert find({f"k{n}": n}, (f"k{n}",)) == [({f"k{n}": n}, f"k{n}")]
        assert len(adapter._PLANS) <= 4096
    assert find(DOCUMENT, ("a", "b")) == [(DOCUMENT["a"], "b")]


def test_json_path_edge_steps() -> None:
    assert find(DOCUMENT, ()) == []
    assert find(DOCUMENT, ("a", "list", -1)) == [(DOCUMENT["a"]["list"], -1)]  # type: ignore[index]
    assert find(["x"], (0,)) == [(["x"], 0)]
    assert find({"0": "x"}, (0,)) == []
    assert find(DOCUMENT, ("items", Wildcard(), "u")) == [(DOCUMENT["items"][2], "u")]  # type: ignore[index]


async def test_begin_times_out_and_the_late_connection_is_not_reused() -> None:
    routes = {"/slow": Canned(200, [], b"late", delay=2.0), "/ok": Canned(200, [], b"ok")}
    async with upstream_server(routes) as server:
        pool = UpstreamPool(Origin.parse(server.url), PoolSettings(response_timeout=0.2))
        warm = await pool.request(b"GET", b"/ok", [])
        assert await warm.read_up_to(100) == (b"ok", True)
        started = time.monotonic()
        with pytest.raises(UpstreamError) as caught:
            await pool.begin(b"GET", b"/slow", [])  # on the idle keep-alive connection
        assert caught.value.failure.status == 504
        assert "0.2s" in caught.value.detail
        assert 0.15 < time.monotonic() - started < 1.5  # the timeout, not the late answer
        again = await pool.begin(b"GET", b"/ok", [])  # a fresh connection, not the late one
        assert again.status == 200 and await again.read_up_to(100) == (b"ok", True)
        await pool.aclose()


@pytest.mark.parametrize(
    "agent, hints",
    [
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148", {}),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0 Safari/537.36", {}),
        ("Mozilla/5.0 (Linux; Android 14) Chrome/120.0", {"sec-ch-ua-mobile": "?0"}),
        ("", {"sec-ch-ua-platform": '"macOS"', "sec-ch-ua": '"Google Chrome";v="120"'}),
        ("x" * 500 + " bot", {}),  # longer agents are cut first (test_builtins.py)
    ],
)
async def test_device_classification_is_cached_not_changed(
    agent: str, hints: dict[str, str]
) -> None:
    from slotwise.testing.provider import make_request

    provider = device.DeviceProvider(device.DeviceProvider.config_type())
    request = make_request(headers={"user-agent": agent, **hints} if agent else hints)
    expected = device.classify(
        agent,
        mobile_hint=hints.get("sec-ch-ua-mobile"),
        platform_hint=hints.get("sec-ch-ua-platform"),
        brands_hint=hints.get("sec-ch-ua"),
    )
    assert await provider.fetch(request) == expected
    assert await provider.fetch(request) == expected  # from the cache the second time
