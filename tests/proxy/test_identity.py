"""The first-party id cookie through the app: issued with personal consent only, configurable,
the subject of the request's decisions; an erased id is not used again, and rotated."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis

from slotwise.proxy.app import ProxyApp
from slotwise.proxy.config import ConfigError, Settings
from slotwise.proxy.config.loader import settings_from_document
from slotwise.proxy.events.schema import Event
from slotwise.proxy.identity import new_user_id
from slotwise.proxy.state import Store
from tests.conftest import REPO
from tests.proxy.support import SPRING_AD, Canned, running, upstream_server

POLICIES = REPO / "examples" / "adserver" / "policies"
AD = SPRING_AD
PERSONAL = {"cookie": "sw_consent=personal"}


@pytest.fixture(autouse=True)
def _builtin_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOTWISE_PLUGINS", "builtins")


@asynccontextmanager
async def _proxy(
    *, store_url: str = "memory://", events: dict[str, Any] | None = None, **tracking: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, ProxyApp]]:
    routes = {"/ad": Canned(200, [("Content-Type", "application/json")], json.dumps(AD).encode())}
    async with upstream_server(routes) as server:
        settings = Settings.of(
            upstream_url=server.url,
            proxy_policies=str(POLICIES),
            tracking=tracking,
            store_url=store_url,
            events=events or {},
            # what is asserted is the decision, not its speed: deadlines a loaded machine meets
            proxy_decision_deadline_ms=2000.0,
            proxy_signals_deadline_ms=5000.0,
            plugins={name: {"deadline_ms": 5000.0} for name in ("consent", "profile")},
        )
        app = ProxyApp(settings)
        async with running(app) as client:
            yield client, app


async def _subjects(app: ProxyApp) -> list[str | None]:
    assert app.runtime is not None
    await app.runtime.engine.decision_log.flush()
    store: Store = app.runtime.store
    return [record.subject for record in await store.log_read("decisions")]


def _attributes(set_cookie: str) -> dict[str, str]:
    first, *rest = [part.strip() for part in set_cookie.split(";")]
    name, _, value = first.partition("=")
    attributes = {"name": name, "value": value}
    for part in rest:
        key, _, val = part.partition("=")
        attributes[key.lower()] = val
    return attributes


async def test_a_consenting_visitor_without_an_id_gets_one_and_is_its_subject() -> None:
    async with _proxy() as (client, app):
        response = await client.get("/ad", headers=PERSONAL)
        assert response.status_code == 200
        cookies = response.headers.get_list("set-cookie")
        assert len(cookies) == 1, cookies
        cookie = _attributes(cookies[0])
        assert cookie["name"] == "sw_uid" and len(cookie["value"]) == 33
        assert cookie["max-age"] == "34128000" and cookie["samesite"] == "Lax"
        assert "secure" in cookie and "httponly" not in cookie and "domain" not in cookie
        assert cookie["path"] == "/"
        assert await _subjects(app) == [cookie["value"]]
        # the id comes back: no new cookie, the same subject
        again = await client.get(
            "/ad", headers={"cookie": f"sw_consent=personal; sw_uid={cookie['value']}"}
        )
        assert again.headers.get_list("set-cookie") == []
        assert await _subjects(app) == [cookie["value"]] * 2


async def test_no_cookie_and_no_id_without_personal_consent() -> None:
    async with _proxy() as (client, app):
        for headers in ({}, {"cookie": "sw_consent=no"}, {**PERSONAL, "sec-gpc": "1"}):
            response = await client.get("/ad", headers=headers)
            assert response.status_code == 200
            assert response.headers.get_list("set-cookie") == [], headers
        assert await _subjects(app) == [None, None, None]


async def test_the_cookie_attributes_are_configurable() -> None:
    tracking = {
        "user_cookie": "uid",
        "user_cookie_max_age": 3600,
        "user_cookie_secure": False,
        "user_cookie_same_site": "Strict",
        "user_cookie_domain": "shop.example",
    }
    async with _proxy(**tracking) as (client, app):
        response = await client.get("/ad", headers=PERSONAL)
        cookie = _attributes(response.headers["set-cookie"])
        assert cookie["name"] == "uid" and cookie["max-age"] == "3600"
        assert cookie["samesite"] == "Strict" and cookie["domain"] == "shop.example"
        assert "secure" not in cookie
        assert await _subjects(app) == [cookie["value"]]
        known = await client.get("/ad", headers={"cookie": "sw_consent=personal; uid=known-1"})
        assert "set-cookie" not in known.headers
        assert (await _subjects(app))[-1] == "known-1"


async def test_max_age_zero_issues_no_cookie() -> None:
    async with _proxy(user_cookie_max_age=0) as (client, app):
        response = await client.get("/ad", headers=PERSONAL)
        assert "set-cookie" not in response.headers
        assert await _subjects(app) == [None]


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("user_cookie_same_site", "lax", "Strict, Lax, None"),
        ("user_cookie", "a b", "cookie name"),
        ("user_cookie_domain", "exa mple.com", "domain"),
        ("user_cookie_max_age", -1, "user_cookie_max_age"),
    ],
)
def test_bad_cookie_settings_are_refused_naming_the_key(key: str, value: Any, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_document({"tracking": {key: value}}, "slotwise.toml", environ={})
    assert key in str(caught.value) and words in str(caught.value)


def test_issued_ids_are_accepted_by_the_event_schema() -> None:
    for _ in range(200):
        uid = new_user_id()
        event = msgspec.json.decode(
            json.dumps({"type": "page_view", "id": "e1", "user_id": uid}),
            type=Event,  # type: ignore[arg-type]
        )
        assert event.user_id == uid


ADMIN = {"Authorization": "Bearer identity-admin-token-0123"}


async def _store_url(store: str, issues: bool, tmp_path: Path, request: Any) -> str:
    if store == "memory":
        return "memory://"
    if store == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    server = request.getfixturevalue("redis")  # the session's redis-server: a db of our own
    url = server.url.rsplit("/", 1)[0] + ("/13" if issues else "/14")
    client = aioredis.Redis.from_url(url)
    await client.flushdb()
    await client.aclose()
    return url


@pytest.mark.parametrize("store", ["memory", "sqlite", "redis"])
@pytest.mark.parametrize("issues", [True, False])
async def test_an_erased_id_is_never_logged_again_and_its_cookie_rotates(
    store: str, issues: bool, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = await _store_url(store, issues, tmp_path, request)
    tracking = {} if issues else {"user_cookie_max_age": 0}
    events = {"admin_token": ADMIN["Authorization"][7:], "admin_loopback_only": False}
    async with _proxy(store_url=url, events=events, **tracking) as (client, app):
        known = {"cookie": "sw_consent=personal; sw_uid=erase-me"}
        assert (await client.get("/ad", headers=known)).status_code == 200
        assert await _subjects(app) == ["erase-me"]
        erased = await client.delete("/_sw/admin/users/erase-me", headers=ADMIN)
        assert erased.status_code == 200 and erased.json()["decisions"] == 1, erased.text
        assert await _subjects(app) == []
        for _ in range(3):
            again = await client.get("/ad", headers=known)
            assert again.status_code == 200
            cookies = again.headers.get_list("set-cookie")
            if issues:  # rotated: a fresh id, the subject of the decision
                assert len(cookies) == 1 and _attributes(cookies[0])["value"] != "erase-me"
            else:
                assert cookies == []
        subjects = await _subjects(app)
        assert len(subjects) == 3 and "erase-me" not in subjects
        if not issues:
            assert subjects == [None] * 3
        else:
            assert len(set(subjects)) == 3 and None not in subjects
        # someone else is untouched
        other = await client.get("/ad", headers={"cookie": "sw_consent=personal; sw_uid=other"})
        assert "set-cookie" not in other.headers
        assert (await _subjects(app))[-1] == "other"
