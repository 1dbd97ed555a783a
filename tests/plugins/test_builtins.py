"""The request, device, time, geo and profile built-in providers."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest

from slotwise.plugins.builtin.clock import WEEKDAYS, daypart
from slotwise.plugins.builtin.device import classify
from slotwise.plugins.builtin.request import preferred_language, referrer_host
from slotwise.plugins.errors import PluginError
from slotwise.plugins.gather import gather
from slotwise.plugins.profile_source import (
    Cart,
    Event,
    Profile,
    StoreProfileSource,
    cart_from_events,
)
from slotwise.plugins.provider import ProviderServices
from slotwise.plugins.registry import load_providers
from slotwise.testing.provider import make_request, provider_set
from tests.plugins.mmdb import city_record, write_mmdb

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)
IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.6 Mobile/15E148 Safari/604.1"
)
ANDROID_PHONE = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36"
)
ANDROID_TABLET = (
    "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
WINDOWS_EDGE = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0"
)
MAC_FIREFOX = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.1; rv:121.0) Gecko/20100101 Firefox/121.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
REDUCED_CHROME = (
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36"
)


@pytest.mark.parametrize(
    ("ua", "expected"),
    [
        (IPHONE, ("mobile", "ios", "safari")),
        (IPAD, ("tablet", "ios", "safari")),
        (ANDROID_PHONE, ("mobile", "android", "chrome")),
        (ANDROID_TABLET, ("tablet", "android", "chrome")),
        (WINDOWS_EDGE, ("desktop", "windows", "edge")),
        (MAC_FIREFOX, ("desktop", "macos", "firefox")),
        (GOOGLEBOT, ("bot", None, "other")),
    ],
)
def test_device_from_user_agent(ua: str, expected: tuple[str, str | None, str]) -> None:
    got = classify(ua)
    assert (got.get("device.type"), got.get("device.os"), got.get("device.browser")) == expected


def test_client_hints_win_over_the_frozen_user_agent() -> None:
    got = classify(
        REDUCED_CHROME,
        mobile_hint="?0",
        platform_hint='"Windows"',
        brands_hint='"Not_A Brand";v="8", "Chromium";v="120", "Microsoft Edge";v="120"',
    )
    assert got == {"device.type": "desktop", "device.os": "windows", "device.browser": "edge"}
    hinted = classify("", mobile_hint="?1", platform_hint='"Android"')
    assert hinted == {"device.type": "mobile", "device.os": "android"}
    assert classify("") == {}


async def test_request_signals() -> None:
    async with provider_set("request") as providers:
        request = make_request(
            "/c/Shoes/running",
            query="placement=home_top&utm_source=newsletter&utm_campaign=spring",
            headers={
                "Referer": "https://www.Google.com/search?q=x",
                "Accept-Language": "en;q=0.4, de-CH, de;q=0.9, *;q=0.1",
            },
        )
        got = dict((await gather(providers, request)).signals)
    assert got == {
        "request.path": "/c/Shoes/running",
        "request.placement": "home_top",
        "request.page_type": "category",
        "request.page_category": "shoes",
        "request.referrer": "google.com",
        "request.language": "de",
        "request.utm_source": "newsletter",
        "request.utm_campaign": "spring",
    }


async def test_request_placement_header_and_custom_page_rules() -> None:
    config = {"request": {"page_types": {"^/deals": "category", "^/$": "home"}}}
    async with provider_set("request", config=config) as providers:
        got = await gather(providers, make_request("/deals/x", headers={"X-SW-Placement": "side"}))
        assert got.signals["request.placement"] == "side"
        assert got.signals["request.page_type"] == "category"
        other = await gather(providers, make_request("/p/123"))
        assert other.signals["request.page_type"] == "other"


def test_bad_page_rule_names_the_provider() -> None:
    with pytest.raises(PluginError) as info:
        load_providers({"request": {"page_types": {"^/x": "landing", "(": "home"}}})
    [problem] = info.value.problems
    assert problem.provider == "request" and "landing" in problem.message


def test_language_and_referrer_parsing() -> None:
    assert preferred_language("fr-CA,fr;q=0.9,en;q=0.8") == "fr"
    assert preferred_language("*;q=0.5, en;q=0") is None
    assert preferred_language("x-klingon, en;q=0.2") == "en"
    assert referrer_host("android-app://com.google.android.gm/") == "com.google.android.gm"
    assert referrer_host("not a url") is None


@pytest.mark.parametrize(
    ("hour", "part"), [(5, "morning"), (11, "morning"), (12, "afternoon"), (17, "evening"),
                       (21, "evening"), (22, "night"), (0, "night"), (4, "night")],
)  # fmt: skip
def test_dayparts(hour: int, part: str) -> None:
    assert daypart(hour) == part


async def test_time_in_the_users_zone_from_geo() -> None:
    # 2026-03-02 23:30 UTC is Tuesday 08:30 in Tokyo, Monday 23:30 in London.
    at = dt.datetime(2026, 3, 2, 23, 30, tzinfo=dt.UTC).timestamp()
    async with provider_set("geo", "time") as providers:
        tokyo = await gather(
            providers, make_request(headers={"CF-Timezone": "Asia/Tokyo"}, received_at=at)
        )
        unknown = await gather(providers, make_request(received_at=at))
        bogus = await gather(
            providers, make_request(headers={"CF-Timezone": "Nowhere/City"}, received_at=at)
        )
    assert (tokyo.signals["time.hour"], tokyo.signals["time.weekday"]) == (8, "tue")
    assert tokyo.signals["time.daypart"] == "morning"
    assert (unknown.signals["time.hour"], unknown.signals["time.weekday"]) == (23, "mon")
    assert unknown.signals["time.daypart"] == "night"
    assert bogus.signals["time.hour"] == 23


async def test_time_default_zone_is_configurable() -> None:
    at = dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.UTC).timestamp()
    config = {"time": {"default_timezone": "America/New_York"}}
    async with provider_set("time", config=config) as providers:
        got = await gather(providers, make_request(received_at=at))
    assert got.signals["time.hour"] == 8


@pytest.mark.parametrize(
    ("zone", "start"),
    [
        ("Europe/Berlin", dt.datetime(2026, 3, 29, 0, 58, 30, tzinfo=dt.UTC)),  # DST starts
        ("Australia/Lord_Howe", dt.datetime(2026, 4, 4, 14, 58, tzinfo=dt.UTC)),  # half an hour
        ("Asia/Kolkata", dt.datetime(2026, 12, 31, 18, 28, 30, tzinfo=dt.UTC)),  # +5:30, new year
        # before 1973 an offset need not be whole minutes: Amsterdam's hour turned at :40:28 UTC
        ("Europe/Amsterdam", dt.datetime(1930, 6, 1, 10, 39, 30, tzinfo=dt.UTC)),
    ],
)
async def test_time_reused_within_a_minute_is_still_the_local_time(
    zone: str, start: dt.datetime
) -> None:
    # the provider answers once per zone and UTC minute; requests every 7 s across a change
    # of hour, offset or day each get the local time datetime gives
    headers = {"CF-Timezone": zone}
    async with provider_set("geo", "time") as providers:
        for step in range(40):
            at = start.timestamp() + 7 * step
            got = await gather(providers, make_request(headers=headers, received_at=at))
            local = dt.datetime.fromtimestamp(at, ZoneInfo(zone))
            expected = (local.hour, WEEKDAYS[local.weekday()], daypart(local.hour))
            signals = got.signals
            assert (signals["time.hour"], signals["time.weekday"], signals["time.daypart"]) == (
                expected
            ), (zone, at)


@pytest.fixture
def city_db(tmp_path: Path) -> Path:
    return write_mmdb(
        tmp_path / "city.mmdb",
        {
            "81.2.69.0/24": city_record("GB", "London", "Europe/London", "ENG"),
            "2.125.160.0/20": city_record("DE", "Berlin", "Europe/Berlin", "BE"),
            "89.160.20.128/25": {"registered_country": {"iso_code": "SE"}},
        },
    )


async def test_geo_from_a_maxmind_database(city_db: Path) -> None:
    config: dict[str, Any] = {"geo": {"database": str(city_db)}}
    async with provider_set("geo", config=config) as providers:
        london = await gather(providers, make_request(client_ip="81.2.69.160"))
        berlin = await gather(
            providers, make_request(client_ip="2.125.161.7", headers={"CF-IPCountry": "FR"})
        )
        sweden = await gather(providers, make_request(client_ip="89.160.20.200"))
        nowhere = await gather(providers, make_request(client_ip="192.0.2.1"))
        garbage = await gather(providers, make_request(client_ip="not-an-ip"))
    assert dict(london.signals) == {
        "geo.country": "GB",
        "geo.region": "ENG",
        "geo.city": "London",
        "geo.timezone": "Europe/London",
        "geo.latitude": 52.5,
        "geo.longitude": 13.4,
    }
    assert berlin.signals["geo.country"] == "DE"  # the database wins over a header
    assert sweden.signals["geo.country"] == "SE"
    assert "geo.country" not in nowhere.signals
    assert dict(garbage.signals) == {}


async def test_geo_from_cdn_headers_or_absent() -> None:
    async with provider_set("geo") as providers:
        got = await gather(providers, make_request(headers={"CF-IPCountry": "de"}))
        assert got.signals["geo.country"] == "DE"
        located = await gather(
            providers,
            make_request(headers={"CF-IPLatitude": "48.1", "CF-IPLongitude": "999"}),
        )
        assert dict(located.signals) == {"geo.latitude": 48.1}
        tor = await gather(providers, make_request(headers={"CF-IPCountry": "T1"}))
        assert "geo.country" not in tor.signals
        assert dict((await gather(providers, make_request())).signals) == {}
    untrusted = {"geo": {"trust_cdn_headers": False}}
    async with provider_set("geo", config=untrusted) as providers:
        got = await gather(providers, make_request(headers={"CF-IPCountry": "DE"}))
        assert dict(got.signals) == {}


async def test_headers_in_a_mapping_built_by_hand_are_read_too() -> None:
    # the parser builds a dict, which geo and device look up directly; a request a test or a
    # plugin builds with another mapping is read the same
    agent = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15"
    headers = MappingProxyType({"cf-ipcountry": "DE", "user-agent": agent})
    request = msgspec.structs.replace(make_request(), headers=headers)
    async with provider_set("geo", "device") as providers:
        got = await gather(providers, request)
    assert got.signals["geo.country"] == "DE"
    assert got.signals["device.os"] == "ios"


async def test_built_ins_return_their_answers_again_read_only() -> None:
    # consent (per level and reason), device (per agent) and time (per zone and minute) keep
    # their answers: gather validates each object once (reuses_results) and nobody changes it
    agent = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
    at = dt.datetime(2026, 7, 1, 12, 0, 5, tzinfo=dt.UTC).timestamp()
    first, again = (
        make_request(
            headers={"User-Agent": agent}, cookies={"sw_consent": "personal"}, received_at=t
        )
        for t in (at, at + 30)
    )
    async with provider_set("consent", "device", "time") as providers:
        for name in ("consent", "device", "time"):
            provider = providers.by_name[name].provider
            assert provider.reuses_results is True
            answer = provider.fetch_now(first)  # type: ignore[attr-defined]
            assert provider.fetch_now(again) is answer, name  # type: ignore[attr-defined]
            assert isinstance(answer, MappingProxyType), name
        got = await gather(providers, again)
    assert got.signals["consent.level"] == "personal"
    assert (got.signals["device.browser"], got.signals["time.hour"]) == ("firefox", 12)


def test_geo_config_errors_name_the_provider(tmp_path: Path) -> None:
    with pytest.raises(PluginError) as info:
        load_providers({"geo": {"database": str(tmp_path / "missing.mmdb")}})
    assert info.value.problems[0].provider == "geo"
    assert "no such file" in str(info.value)
    bad = tmp_path / "bad.mmdb"
    bad.write_bytes(b"not a database")
    with pytest.raises(PluginError) as info:
        load_providers({"geo": {"database": str(bad)}})
    assert info.value.problems[0].code == "provider_init"


async def test_profile_over_the_state_store() -> None:
    from slotwise.proxy.events.collector import history_key
    from slotwise.proxy.state import HistoryItem, open_store, subject_key

    now = 1_800_000_000.0
    async with open_store("memory://") as store:
        await store.set(
            subject_key("u1", "profile"),
            msgspec.json.encode(Profile(age=31, gender="f", segments=("loyal",), visits=7)),
        )
        await store.set(
            subject_key("u1", "cart"),
            msgspec.json.encode(Cart(value=59.5, items=("sku-1", "sku-2"), count=3)),
        )
        await store.history_append(
            history_key("u1"),  # where the event collector keeps it
            [HistoryItem("add_to_cart", now - 3600), HistoryItem("add_to_cart", now - 60)],
            max_len=100,
        )
        services = ProviderServices(profiles=StoreProfileSource(store, subject_key))
        async with provider_set("consent", "profile", services=services) as providers:
            granted = make_request(cookies={"sw_consent": "yes"}, user_id="u1", received_at=now)
            got = await gather(providers, granted)
            stranger = await gather(
                providers,
                make_request(cookies={"sw_consent": "yes"}, user_id="u2", received_at=now),
            )
            refused = await gather(
                providers, make_request(cookies={"sw_consent": "no"}, user_id="u1")
            )
    assert {k: v for k, v in got.signals.items() if k.startswith(("user.", "cart."))} == {
        "user.age": 31,
        "user.gender": "f",
        "user.segments": ("loyal",),
        "user.visits": 7,
        "user.is_new": False,
        "cart.value": 59.5,
        "cart.count": 3,
        "cart.items": ("sku-1", "sku-2"),
    }
    assert got.history.count("add_to_cart", now - 7200) == 2
    assert got.history.count("add_to_cart", now - 120) == 1
    assert got.history.last("add_to_cart") == now - 60
    assert stranger.signals["user.is_new"] is True and stranger.signals["cart.count"] == 0
    assert not any(k.startswith("user.") for k in refused.signals)


async def test_profile_over_a_store_whose_reads_never_wait_runs_in_the_requests_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """memory:// answers at once: the profile provider then makes no task, timer or wait per
    request, with the same signals; over a store whose reads wait it stays a task of its own."""
    from slotwise.proxy.state import HistoryItem, open_store, subject_key

    now = 1_800_000_000.0
    async with open_store("memory://") as store:
        await store.set(subject_key("u1", "profile"), msgspec.json.encode(Profile(age=31)))
        await store.history_append(
            subject_key("u1", "history"), [HistoryItem("add_to_cart", now - 60)], max_len=10
        )
        at_once = StoreProfileSource(store, subject_key)
        services = ProviderServices(profiles=at_once)
        async with provider_set("consent", "profile", services=services) as providers:
            assert providers.by_name["profile"].inline is True
            started = _count_tasks(monkeypatch)
            request = make_request(cookies={"sw_consent": "yes"}, user_id="u1", received_at=now)
            got = await gather(providers, request)
            monkeypatch.undo()
        assert started == []
        assert got.signals["user.age"] == 31 and got.history.last("add_to_cart") == now - 60
        store.answers_at_once = False  # as Redis and SQLite: reads wait
        waits = ProviderServices(profiles=StoreProfileSource(store, subject_key))
        async with provider_set("consent", "profile", services=waits) as providers:
            assert providers.by_name["profile"].inline is False
            again = await gather(providers, request)
    assert again.signals == got.signals


class _AsyncReadsOnly:
    """memory:// behind reads that answer at once but only as coroutines (no get_many_now,
    history_now): a store without synchronous reads."""

    answers_at_once = True

    def __init__(self, store: Any) -> None:
        self._store = store

    async def get_many(self, keys: Any) -> Any:
        return await self._store.get_many(keys)

    async def history(self, key: str, *, since: float = 0.0) -> Any:
        return await self._store.history(key, since=since)


async def test_profile_over_synchronous_reads_answers_through_fetch_now_as_fetch_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Over memory:// (synchronous reads) gather takes the profile provider's answer from
    fetch_now, without a coroutine, for a known user, an alias and an erased user alike; over
    reads that answer at once only as coroutines fetch_now says NOT_NOW and gather steps fetch
    in the request's task: the same signals both ways."""
    from slotwise.plugins.builtin.profile import ProfileProvider
    from slotwise.plugins.provider import NOT_NOW
    from slotwise.proxy.events.aliases import alias_key
    from slotwise.proxy.events.erasure import erased_key
    from slotwise.proxy.state import HistoryItem, open_store, subject_key

    now = 1_800_000_000.0
    requests = [
        make_request(cookies={"sw_consent": "yes"}, user_id=user, received_at=now)
        for user in ("u1", "a1", "gone", "u2")
    ]

    async def signals(store: Any, fetch_runs: bool) -> list[dict[str, Any]]:
        source = StoreProfileSource(store, subject_key, erased_key, alias_key)
        services = ProviderServices(profiles=source)
        async with provider_set("consent", "profile", services=services) as providers:
            loaded = providers.by_name["profile"]
            provider = loaded.provider
            assert isinstance(provider, ProfileProvider) and loaded.inline is True
            assert source.reads_now is not fetch_runs and loaded.fetch_now is not None
            fetched: list[object] = []
            fetch = provider.fetch

            async def watched(request: Any) -> Any:
                fetched.append(request)
                return await fetch(request)

            monkeypatch.setattr(provider, "fetch", watched)
            started = _count_tasks(monkeypatch)
            got = [dict((await gather(providers, r)).signals) for r in requests]
            monkeypatch.undo()
            assert started == []  # in the request's task either way
            assert len(fetched) == (len(requests) if fetch_runs else 0)
            if fetch_runs:
                assert provider.fetch_now(requests[0]) is NOT_NOW
            return got

    async with open_store("memory://") as store:
        await store.set(subject_key("u1", "profile"), msgspec.json.encode(Profile(age=31)))
        await store.set(alias_key("a1"), b"u1")
        await store.set(erased_key("gone"), b"1")
        await store.history_append(
            subject_key("u1", "history"), [HistoryItem("add_to_cart", now - 60)], max_len=10
        )
        synchronous = await signals(store, fetch_runs=False)
        stepped = await signals(_AsyncReadsOnly(store), fetch_runs=True)
    assert synchronous == stepped
    assert synchronous[0]["user.age"] == 31 and synchronous[1]["user.age"] == 31  # the alias
    assert synchronous[2]["user.erased"] is True and "user.age" not in synchronous[3]


class _Handshake:
    """A profile source whose two reads only finish together: run one after the other, they
    would wait for each other forever."""

    def __init__(self, *, records_fail: bool = False) -> None:
        self.events_started = asyncio.Event()
        self.records_fail = records_fail
        self.events_cancelled = False

    async def records(self, user_id: str) -> tuple[Profile | None, Cart | None]:
        await self.events_started.wait()
        if self.records_fail:
            raise ConnectionError("store went away")
        return Profile(age=40), None

    async def events(self, user_id: str, since: float) -> list[Event]:
        self.events_started.set()
        try:
            await asyncio.sleep(0 if not self.records_fail else 3600)
        except asyncio.CancelledError:
            self.events_cancelled = True
            raise
        return [Event("session_start", since + 1)]


async def test_profile_reads_records_and_events_at_once() -> None:
    source = _Handshake()
    services = ProviderServices(profiles=source)
    async with provider_set("consent", "profile", services=services) as providers:
        got = await gather(providers, make_request(cookies={"sw_consent": "yes"}, user_id="u1"))
        assert providers.by_name["profile"].metrics.misses["timeout"] == 0
    assert got.signals["user.age"] == 40 and got.signals["user.visits"] == 1


async def test_a_failing_profile_read_stops_the_other(caplog: pytest.LogCaptureFixture) -> None:
    source = _Handshake(records_fail=True)
    services = ProviderServices(profiles=source)
    async with provider_set("consent", "profile", services=services) as providers:
        got = await gather(providers, make_request(cookies={"sw_consent": "yes"}, user_id="u1"))
        await asyncio.sleep(0)
        assert providers.by_name["profile"].metrics.misses["error"] == 1
    assert source.events_cancelled
    assert not any(k.startswith("user.") for k in got.signals)
    assert "never retrieved" not in caplog.text


def test_cart_from_events() -> None:
    def item(kind: str, at: float, **props: object) -> Event:
        return Event(kind, at, msgspec.json.encode(props))

    events = [
        item("add_to_cart", 1, product_id="old", price=5.0),
        item("purchase", 2, order_id="o1"),
        item("add_to_cart", 3, product_id="a", price=10.0, quantity=2),
        item("add_to_cart", 4, product_id="b", price=4.5),
        item("add_to_cart", 5, product_id="c", price=1.0),
        item("remove_from_cart", 6, product_id="c"),
        Event("add_to_cart", 7, b""),  # properties over the collector's size limit
        item("page_view", 8, url="/x"),
    ]
    assert cart_from_events(events) == Cart(value=24.5, items=("a", "b"), count=3)
    assert cart_from_events([item("page_view", 1)]) is None


async def test_profile_reads_what_the_event_collector_wrote() -> None:
    from slotwise.proxy.events.collector import EventCollector
    from slotwise.proxy.events.schema import convert_event
    from slotwise.proxy.state import open_store, subject_key

    now = time.time()
    raw = [
        {"type": "session_start", "id": "e1", "time": now - 7200, "user_id": "u9"},
        {"type": "session_start", "id": "e2", "time": now - 600, "user_id": "u9"},
        {
            "type": "add_to_cart",
            "id": "e3",
            "time": now - 300,
            "user_id": "u9",
            "properties": {"product_id": "sku-7", "price": 30.0, "quantity": 2},
        },
    ]
    events = [convert_event(r) for r in raw]
    async with open_store("memory://") as store:
        async with EventCollector(store) as collector:
            await collector.collect(events, consent="personal")  # type: ignore[arg-type]
        services = ProviderServices(profiles=StoreProfileSource(store, subject_key))
        async with provider_set("consent", "profile", services=services) as providers:
            got = await gather(
                providers,
                make_request(cookies={"sw_consent": "yes"}, user_id="u9", received_at=now),
            )
    assert got.signals["user.visits"] == 2 and got.signals["user.is_new"] is False
    assert (got.signals["cart.value"], got.signals["cart.count"]) == (60.0, 2)
    assert got.signals["cart.items"] == ("sku-7",)
    assert got.history.count("add_to_cart", now - 3600) == 1


async def test_long_agents_are_cut_before_parsing_and_cached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # issue 21: 15 KB agents, all different, were parsed uncached (about 7 ms each)
    from slotwise.plugins.builtin import device
    from slotwise.plugins.builtin.device import MAX_AGENT, DeviceProvider, _parsed

    # the parse budget is wall-clock time: a stall of a loaded machine during the 20 parses
    # would send the later agents to the coarse classification (that budget has its own test)
    monkeypatch.setattr(device, "_PARSE_BURST", 3600.0)
    monkeypatch.setattr(device._COARSE, "spent", 0.0)  # restored after: the bucket as it was
    iphone = (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
    )
    agents = [iphone + f" x{n} " + "A" * 15_000 for n in range(20)]
    async with provider_set(DeviceProvider) as providers:
        for agent in agents:
            got = await gather(providers, make_request(headers={"User-Agent": agent}))
            assert got.signals["device.type"] == "mobile"
            assert got.signals["device.os"] == "ios"
    # a crawler padding its agent past the cap is still a bot
    async with provider_set(DeviceProvider) as providers:
        padded = make_request(headers={"User-Agent": "x" * 2000 + " bot"})
        assert (await gather(providers, padded)).signals["device.type"] == "bot"
    # each was parsed and cached under its first MAX_AGENT characters
    hits = _parsed.cache_info().hits
    for agent in agents:
        _parsed(agent[:MAX_AGENT], None, None, None)
    assert _parsed.cache_info().hits == hits + len(agents)


async def test_new_agents_past_the_parse_budget_are_classified_coarsely() -> None:
    # issue 21: a client sending a new agent with every request spent the worker on parsing
    from slotwise.plugins.builtin import device

    budget = device._COARSE
    budget.spent, budget.since = 10.0, time.perf_counter()  # spent
    async with provider_set(device.DeviceProvider) as providers:
        phone = make_request(headers={"User-Agent": "Mozilla/5.0 (Linux; Android 14) Mobile z1"})
        got = await gather(providers, phone)
        assert got.signals["device.type"] == "mobile"
        assert "device.os" not in got.signals  # needs the parser
        assert providers.by_name["device"].provider.metrics.fallbacks["parse_budget"] == 1
        budget.spent = 0.0  # the bucket drained: the agent is parsed (and cached) now
        got = await gather(providers, phone)
        assert got.signals["device.os"] == "android"


def _count_tasks(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """What asyncio.ensure_future is handed from now on (gather's tasks), until undo()."""
    started: list[object] = []
    ensure_future = asyncio.ensure_future

    def counted(*args: Any, **kwargs: Any) -> Any:
        started.append(args[0])
        return ensure_future(*args, **kwargs)

    monkeypatch.setattr(asyncio, "ensure_future", counted)
    return started
