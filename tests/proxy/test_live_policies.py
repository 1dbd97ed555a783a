"""The proxy with real compiled policies: selection by request signals, hot reload, the bandit.

Policies are compiled by slotwise.dsl from .sw files, signals come from the built-in providers.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from slotwise.plugins.registry import load_schema
from slotwise.proxy.app import ProxyApp
from slotwise.proxy.chooser import BanditChooser
from slotwise.proxy.config import Settings
from slotwise.proxy.metrics import ProxyMetrics
from slotwise.proxy.policy_snapshot import PolicySnapshot
from tests.conftest import REPO
from tests.proxy.support import Canned, running, stored_json, upstream_server

DEMO_POLICIES = REPO / "examples" / "adserver" / "policies"
AD = {
    "placement": "home-top",
    "campaign_id": "cmp-spring",
    "creative": {"headline": "Spring collection", "image_url": "https://x/y.jpg", "cta": "Shop"},
}
POLICY = """policy "live" version 1

campaign spring_sale {{
  applies when ad.campaign_id == "cmp-spring"
  slot headline at "$.creative.headline" {{
    variant only "{text}"
  }}
  optimize clicks
}}
"""


@pytest.fixture(autouse=True)
def _builtin_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    # only the built-in signal providers: an installed example plugin must not change results
    monkeypatch.setenv("SLOTWISE_PLUGINS", "builtins")


def _routes() -> dict[str, Canned]:
    return {"/ad": Canned(200, [("Content-Type", "application/json")], json.dumps(AD).encode())}


def _settings(url: str, policies: Path, **extra: Any) -> Settings:
    # generous deadlines: a loaded test machine must not drop signals or decisions
    return Settings.of(
        upstream_url=url,
        proxy_policies=str(policies),
        proxy_decision_deadline_ms=2000.0,
        proxy_signals_deadline_ms=2000.0,
        proxy_metrics_public=True,  # scraped from the test client's address
        **extra,
    )


async def test_request_signals_drive_the_rules() -> None:
    async with upstream_server(_routes()) as server:
        app = ProxyApp(_settings(server.url, DEMO_POLICIES))
        async with running(app) as client:
            german = await client.get("/ad", headers={"cf-ipcountry": "DE"})
            # pinned for Germany, unless this request fell into the 10% holdout
            assert german.json()["creative"]["headline"] in (
                "Frühlingsangebote",
                "Spring collection",
            )
            headlines = set()
            for _ in range(30):
                ad = (await client.get("/ad", headers={"cf-ipcountry": "US"})).json()
                headlines.add(ad["creative"]["headline"])
            assert "Frühlingsangebote" not in headlines  # excluded outside Germany
            assert {"Spring deals are here", "Save 20% this week"} & headlines


async def test_policies_reload_on_change_and_keep_serving_on_error(tmp_path: Path) -> None:
    policy = tmp_path / "live.sw"
    policy.write_text(POLICY.format(text="first"))
    async with upstream_server(_routes()) as server:
        app = ProxyApp(_settings(server.url, tmp_path, proxy_reload_interval=0.05))
        async with running(app) as client:
            assert (await client.get("/ad")).json()["creative"]["headline"] == "first"
            policy.write_text(POLICY.format(text="second version"))
            await _until(lambda: app.metrics.policy_reloads.get("ok") >= 2)
            assert (await client.get("/ad")).json()["creative"]["headline"] == "second version"
            policy.write_text("policy broken")
            await _until(lambda: app.metrics.policy_reloads.get("error") >= 1)
            assert (await client.get("/ad")).json()["creative"]["headline"] == "second version"
            ready = await client.get("/_sw/ready")
            assert ready.status_code == 200  # the previous set still serves


async def test_bandit_chooser_plugs_in() -> None:
    from slotwise.proxy.bandit.runtime import BanditRuntime

    runtime = BanditRuntime()
    snapshot = PolicySnapshot(DEMO_POLICIES, load_schema(), ProxyMetrics())
    snapshot.on_swap.append(runtime.install_policy_set)
    assert snapshot.load()
    async with upstream_server(_routes()) as server:
        app = ProxyApp(
            _settings(server.url, DEMO_POLICIES),
            chooser=BanditChooser(runtime),
            policies=snapshot,
        )
        async with running(app) as client:
            for _ in range(5):
                await client.get("/ad", headers={"cf-ipcountry": "US"})
            assert app.runtime is not None
            await app.runtime.engine.decision_log.flush()
            entries = await app.runtime.store.log_read("decisions")
    records = [stored_json(e.data) for e in entries]
    assert len(records) == 5
    assert {r["model_version"] for r in records} == {"v0"}  # the untrained bandit model
    for record in records:
        if not record["holdout"]:
            assert {s["slot"] for s in record["slots"]} == {"headline", "image", "cta"}
            assert all(0 < s["probability"] <= 1 for s in record["slots"])


async def _until(condition: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def test_configured_models_dir_serves_the_bandit_and_hot_reloads(tmp_path: Path) -> None:
    from slotwise.dsl.loader import load_policy_set
    from slotwise.proxy.bandit.campaign import from_compiled
    from slotwise.proxy.bandit.store import ModelStore
    from slotwise.proxy.bandit.workspace import new_workspace

    models = tmp_path / "models"
    settings = _settings(
        "", DEMO_POLICIES, bandit_models_dir=str(models), bandit_reload_interval=0.1
    )
    async with upstream_server(_routes()) as server:
        app = ProxyApp(settings.replace(upstream_url=server.url))
        async with running(app) as client:
            await client.get("/ad", headers={"cf-ipcountry": "US"})
            # the learner (another process in production) publishes version 1
            policy = load_policy_set([DEMO_POLICIES], load_schema())
            spring = next(from_compiled(c) for c in policy.campaigns if c.name == "spring_sale")
            ModelStore(models).publish(
                "spring_sale", new_workspace(spring.explore), family="epsilon", examples=0
            )
            await _until(lambda: _served_version(app) == "v1")
            metrics = (await client.get("/_sw/metrics")).text
            assert 'slotwise_model_info{campaign="spring_sale",version="v1"} 1' in metrics
            await client.get("/ad", headers={"cf-ipcountry": "US"})
            assert app.runtime is not None
            await app.runtime.engine.decision_log.flush()
            entries = await app.runtime.store.log_read("decisions")
    versions = [stored_json(e.data)["model_version"] for e in entries]
    assert versions == ["v0", "v1"]


async def test_remembered_contexts_setting_bounds_the_served_models_memory(
    tmp_path: Path,
) -> None:
    """bandit.remembered_contexts reaches every model `slotwise serve` loads: the memory of
    distributions holds at most that many contexts (cleared when full)."""
    settings = _settings(
        "", DEMO_POLICIES, bandit_models_dir=str(tmp_path / "m"), bandit_remembered_contexts=2
    )
    async with upstream_server(_routes()) as server:
        app = ProxyApp(settings.replace(upstream_url=server.url))
        async with running(app) as client:
            bandit = app.runtime.bandit if app.runtime else None
            assert bandit is not None and bandit.remember == 2
            model = bandit.snapshot.models["spring_sale"]
            sizes = []
            for country in ("US", "DE", "FR", "GB"):
                await client.get("/ad", headers={"cf-ipcountry": country})
                sizes.append(len(model._remembered))
    # remembered at all, and never more than two (one request may be held out or fail open
    # on a busy machine and remember nothing: the fresh-clone run saw 0, 1, 2, 1)
    assert 1 <= max(sizes) <= 2


def _served_version(app: ProxyApp) -> str | None:
    bandit = app.runtime.bandit if app.runtime else None
    return bandit.snapshot.versions().get("spring_sale") if bandit else None


GEO_POLICY = """policy "geo" version 1

campaign spring_sale {
  applies when ad.campaign_id == "cmp-spring"
  slot headline at "$.creative.headline" {
    variant german "Frühlingsangebote"
    variant english "Spring deals"
  }
  rule "German shoppers" when geo.country == "DE" then pin headline german
  rule "everyone else" when geo.country != "DE" then pin headline english
  holdout 0%
  optimize clicks
}
"""


async def test_signals_are_skipped_where_no_campaign_applied_and_gathered_late(
    tmp_path: Path,
) -> None:
    (tmp_path / "geo.sw").write_text(GEO_POLICY)
    other = dict(AD, campaign_id="cmp-other")
    ad = Canned(200, [("Content-Type", "application/json")], json.dumps(AD).encode())
    no_ad = Canned(200, [("Content-Type", "application/json")], json.dumps(other).encode())
    async with upstream_server({"/ad": ad, "/footer": no_ad}) as server:
        app = ProxyApp(_settings(server.url, tmp_path))
        async with running(app) as client:
            gathers = app.metrics.signal_gathers
            for _ in range(3):
                footer = await client.get("/footer", headers={"cf-ipcountry": "DE"})
                assert footer.json() == other  # untouched
            # the first footer request gathered early and found nothing to personalise
            assert (gathers.get("early"), gathers.get("skipped")) == (1, 2)

            # the footer now carries the campaign: signals are gathered after the response
            # and the rules see them (pinned for Germany)
            server.routes["/footer"] = ad
            footer = await client.get("/footer", headers={"cf-ipcountry": "DE"})
            assert footer.json()["creative"]["headline"] == "Frühlingsangebote"
            assert gathers.get("late") == 1
            # ...and the path gathers early again
            footer = await client.get("/footer", headers={"cf-ipcountry": "US"})
            assert footer.json()["creative"]["headline"] == "Spring deals"
            assert gathers.get("early") == 2

            # a path that personalises always gathers early
            for country, headline in (("DE", "Frühlingsangebote"), ("US", "Spring deals")):
                page = await client.get("/ad", headers={"cf-ipcountry": country})
                assert page.json()["creative"]["headline"] == headline
            assert (gathers.get("early"), gathers.get("late")) == (4, 1)
            metrics = (await client.get("/_sw/metrics")).text
            assert 'slotwise_signal_gathers_total{when="skipped"} 2' in metrics


SELECT_BY_DEVICE = """policy "device" version 1

campaign mobile_only {
  applies when ad.campaign_id == "cmp-spring" and device.type == "mobile"
  slot headline at "$.creative.headline" {
    variant only "Mobile deals"
  }
  holdout 0%
  optimize clicks
}
"""


async def test_selectors_reading_provider_signals_always_gather_early(tmp_path: Path) -> None:
    (tmp_path / "device.sw").write_text(SELECT_BY_DEVICE)
    iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15"
    async with upstream_server(_routes()) as server:
        app = ProxyApp(_settings(server.url, tmp_path))
        async with running(app) as client:
            desktop = await client.get("/ad", headers={"user-agent": "curl/8.0"})
            assert desktop.json() == AD  # the campaign does not apply: no signal says mobile
            mobile = await client.get("/ad", headers={"user-agent": iphone})
            assert mobile.json()["creative"]["headline"] == "Mobile deals"
            gathers = app.metrics.signal_gathers
            assert (gathers.get("early"), gathers.get("skipped"), gathers.get("late")) == (2, 0, 0)
