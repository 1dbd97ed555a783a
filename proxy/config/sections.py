"""The sections of slotwise.toml, one frozen struct each (``[events]`` is
slotwise.proxy.events.config.EventsConfig): every key's type, default, bounds, help and extra
check, written once."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Annotated, Any

import msgspec

from slotwise.proxy.adapters.json import DEFAULT_JSON_PATHS
from slotwise.proxy.http_hygiene import ForwardingPolicy
from slotwise.proxy.identity import check_cookie_domain, check_cookie_name, check_same_site
from slotwise.proxy.upstream import Origin


def setting(
    help: str,
    *,
    ge: float | None = None,
    le: float | None = None,
    check: Callable[[Any], object] | None = None,
) -> msgspec.Meta:
    """A key's help, bounds and extra check (raises ValueError saying what is wrong)."""
    return msgspec.Meta(description=help, ge=ge, le=le, extra={"check": check} if check else None)


# -- checks beyond type and bounds, each on one key's value ----------------------------------


def _origin(url: str) -> None:
    if url:
        Origin.parse(url)


def _networks(cidrs: tuple[str, ...]) -> None:
    ForwardingPolicy.parse(cidrs)


def _ip_address(host: str) -> None:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"{host!r} is not an IP address (listen on 127.0.0.1, 0.0.0.0 for every interface, "
            "or ::)"
        ) from None


def _http_url(url: str) -> None:
    if url and not url.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")


def _hosts(hosts: tuple[str, ...]) -> None:
    from slotwise.proxy.exchange import is_host

    for host in hosts:
        if not host.isascii() or not is_host(host.encode("ascii")):
            raise ValueError(
                f"{host!r} is not a Host header value: write host or host:port, "
                "e.g. ads.example.com:8080 (no scheme, no path)"
            )


def _secret(secret: str) -> None:
    if secret and len(secret) < 16:
        raise ValueError("must be at least 16 characters (use a random string)")


def _json_paths(paths: tuple[str, ...]) -> None:
    from slotwise.dsl.location import JsonPathLocation, LocationError, parse_location

    for text in paths:
        try:
            location = parse_location(text)
        except LocationError as exc:
            raise ValueError(f"{text!r} is not a JSON path: {exc}") from None
        if not isinstance(location, JsonPathLocation):
            raise ValueError(f"{text!r} is not a JSON path (start with '$')")


# -- the sections ------------------------------------------------------------------------------


class UpstreamConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[upstream]``: the ad server or storefront behind the proxy."""

    url: Annotated[
        str,
        setting(
            "origin every request goes to, e.g. `http://adserver:8000`; never taken from a "
            "request; `slotwise serve` needs it",
            check=_origin,
        ),
    ] = ""
    connect_timeout: Annotated[
        float,
        setting(
            "seconds to open a connection (then 504); also the wait for a free pooled connection",
            ge=0.001,
        ),
    ] = 2.0
    timeout: Annotated[
        float, setting("seconds from request sent to response headers (then 504)", ge=0.001)
    ] = 10.0
    read_timeout: Annotated[float, setting("longest silence inside a response body", ge=0.001)] = (
        30.0
    )
    max_connections: Annotated[int, setting("connections per worker to the upstream", ge=1)] = 256
    max_idle: Annotated[int, setting("idle keep-alive connections kept per worker", ge=0)] = 128
    idle_expiry: Annotated[
        float,
        setting(
            "seconds an idle connection is reused; keep it below the upstream's keep-alive timeout",
            ge=0.0,
        ),
    ] = 4.0


class ProxyConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[proxy]``: listening, policies, deadlines and request limits."""

    host: Annotated[str, setting("address to listen on", check=_ip_address)] = "127.0.0.1"
    port: Annotated[int, setting("port to listen on", ge=1, le=65535)] = 8080
    workers: Annotated[int, setting("worker processes", ge=1)] = 1
    respawn_workers: Annotated[
        bool,
        setting(
            "start a new worker when one dies (OOM kill, native crash); a worker that dies again "
            "within 5.5 s of its restart stops the server (a crash loop)"
        ),
    ] = True
    policies: Annotated[str, setting("directory of `*.sw` policy files")] = "policies"
    reload_interval: Annotated[
        float, setting("seconds between policy change checks (0: no reloading)", ge=0.0)
    ] = 1.0
    decision_deadline_ms: Annotated[
        float,
        setting("engine time budget per response (parse, match, choose, rewrite)", ge=0.01),
    ] = 10.0
    signals_deadline_ms: Annotated[
        float,
        setting(
            "longest wait for the signal providers (they run while the upstream answers); the "
            "signals that arrived by then are used, late providers are counted in the provider "
            "metrics",
            ge=0.0,
        ),
    ] = 50.0
    max_header_bytes: Annotated[int, setting("request header block limit (431 beyond)", ge=256)] = (
        16384
    )
    max_body_bytes: Annotated[int, setting("request body limit (413 beyond)", ge=0)] = 1048576
    body_timeout: Annotated[
        float, setting("seconds to receive a request body (408 beyond)", ge=0.001)
    ] = 30.0
    max_rewrite_bytes: Annotated[
        int, setting("larger responses stream through unchanged", ge=1)
    ] = 2097152
    trusted_proxies: Annotated[
        tuple[str, ...],
        setting(
            "CIDRs (load balancers) whose X-Forwarded-For is trusted: kept upstream, and it "
            "names the admin API's client",
            check=_networks,
        ),
    ] = ()


class StoreConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[store]``: where decisions, events and per-user state live."""

    url: Annotated[
        str,
        setting(
            "state store: `sqlite:///path/state.db`, `redis://host:6379/0`, `memory://` (lost "
            "on exit; each log keeps its newest 200,000 entries, `memory://?max_log_entries=N`); "
            "a malformed URL stops `slotwise serve` before it starts, naming what is wrong"
        ),
    ] = "memory://"


class TrackingConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[tracking]``: tracker URLs, click signing and the user cookie."""

    public_url: Annotated[
        str,
        setting(
            "the proxy's public origin used in tracker URLs, e.g. `https://ads.example.com` "
            "(empty: relative tracker URLs, unless the request's Host is in `allowed_hosts`)",
            check=_http_url,
        ),
    ] = ""
    allowed_hosts: Annotated[
        tuple[str, ...],
        setting(
            "Host header values (`host` or `host:port`) whose origin tracker URLs may use when "
            "`public_url` is empty; any other Host is never written into a tracker URL",
            check=_hosts,
        ),
    ] = ()
    secret: Annotated[
        str,
        setting(
            "click-signing key, at least 16 characters; set it (the same on every worker and "
            "machine) so signed clicks survive restarts (empty: random per start)",
            check=_secret,
        ),
    ] = ""
    user_cookie: Annotated[
        str,
        setting(
            "cookie holding the pseudonymous user id (used only with personal consent); the "
            "proxy issues it to a consenting visitor who has none",
            check=check_cookie_name,
        ),
    ] = "sw_uid"
    user_cookie_max_age: Annotated[
        int,
        setting(
            "lifetime in seconds of the id cookie the proxy issues (0: the proxy issues none, "
            "it only reads one)",
            ge=0,
            le=34_560_000,
        ),
    ] = 34_128_000
    user_cookie_secure: Annotated[
        bool, setting("the id cookie is `Secure` (sent over HTTPS only)")
    ] = True
    user_cookie_same_site: Annotated[
        str,
        setting(
            "the id cookie's `SameSite`: `Strict`, `Lax` or `None` (`None` needs "
            "`user_cookie_secure`)",
            check=check_same_site,
        ),
    ] = "Lax"
    user_cookie_domain: Annotated[
        str,
        setting(
            "the id cookie's `Domain`, e.g. `example.com` to share it with subdomains "
            "(empty: this host only)",
            check=check_cookie_domain,
        ),
    ] = ""


class AdaptersConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[adapters]``: where generic JSON ads keep their ids and trackers (JSON paths)."""

    json_campaign_id: Annotated[
        tuple[str, ...],
        setting(
            "JSON paths of the campaign id (generic JSON); the first that exists wins",
            check=_json_paths,
        ),
    ] = DEFAULT_JSON_PATHS["campaign_id"]
    json_creative_id: Annotated[
        tuple[str, ...], setting("JSON paths of the creative id", check=_json_paths)
    ] = DEFAULT_JSON_PATHS["creative_id"]
    json_placement: Annotated[
        tuple[str, ...], setting("JSON paths of the placement", check=_json_paths)
    ] = DEFAULT_JSON_PATHS["placement"]
    json_impression_trackers: Annotated[
        tuple[str, ...],
        setting("lists the impression pixel is appended to", check=_json_paths),
    ] = DEFAULT_JSON_PATHS["impression_trackers"]
    json_click_trackers: Annotated[
        tuple[str, ...], setting("lists the click pixel is appended to", check=_json_paths)
    ] = DEFAULT_JSON_PATHS["click_trackers"]
    json_click_urls: Annotated[
        tuple[str, ...],
        setting(
            "click-through URLs wrapped in the signed `/_sw/click` redirect (`[]`: none)",
            check=_json_paths,
        ),
    ] = DEFAULT_JSON_PATHS["click_urls"]


class BanditConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[bandit]``: the model store the learner publishes to and the proxies reload."""

    models_dir: Annotated[
        str,
        setting(
            "the model store `slotwise learn` publishes to and `slotwise model` manages "
            "(`--models`); when set, a Vowpal Wabbit bandit chooses among the eligible variants "
            "in `slotwise serve`, else the rules do (pin, prefer, boost-weighted uniform); "
            "empty: `learn`, `model` and `evaluate` use `var/slotwise/models`"
        ),
    ] = ""
    reload_interval: Annotated[
        float,
        setting(
            "seconds between checks for a newly published (or rolled back) model; a model that "
            "fails its checksum or VW's loader is rejected and logged, the previous one keeps "
            "serving",
            ge=0.1,
        ),
    ] = 5.0


class GuardrailConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[guardrail]``: revert a campaign whose personalisation harms its goal (reports.md)."""

    enabled: Annotated[
        bool,
        setting(
            "watch every campaign with a control group: `slotwise learn` runs an always-valid "
            "test of personalised against control on the campaign's goal and, on significant "
            "harm, serves the campaign generic to everyone until `slotwise guardrail enable`; "
            "a policy's `guardrail off` turns it off for one campaign"
        ),
    ] = True
    min_decisions: Annotated[
        int,
        setting(
            "joined decisions (both arms) before a campaign's test may revert it; a policy's "
            "`guardrail min N` overrides it per campaign",
            ge=1,
        ),
    ] = 2000
    alpha: Annotated[
        float,
        setting(
            "the test's error rate: the chance of ever reverting a harmless campaign",
            ge=1e-6,
            le=0.5,
        ),
    ] = 0.05
    refresh_interval: Annotated[
        float,
        setting("seconds between a proxy's background reads of the revert set", ge=0.05, le=60),
    ] = 1.0
    webhook_url: Annotated[
        str,
        setting(
            "where `slotwise learn` POSTs a JSON alert on a revert (empty: none)", check=_http_url
        ),
    ] = ""


class DashboardConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[dashboard]``: the live dashboard at `/_sw/dashboard` and the KPIs in `/_sw/metrics`
    (reports.md): `slotwise learn` computes them, every proxy serves a copy."""

    window: Annotated[
        float, setting("seconds of recent decisions the dashboard and KPIs show", ge=60)
    ] = 3600.0
    join_window: Annotated[
        float,
        setting(
            "seconds events may come after their decision; a decision is shown once it passed",
            ge=1,
        ),
    ] = 300.0
    refresh_interval: Annotated[
        float,
        setting(
            "seconds between updates of the figures (by `slotwise learn`) and of each proxy's copy",
            ge=1,
        ),
    ] = 10.0
    segment_by: Annotated[
        tuple[str, ...], setting("logged signals the dashboard breaks results down by")
    ] = ()
