"""The sections of slotwise.toml, one frozen struct each (``[events]`` is
slotwise.proxy.events.config.EventsConfig): every key's type, default, bounds, help and extra
check, written once."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Annotated, Any, Literal

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


def _secrets(keys: tuple[str, ...]) -> None:
    for key in keys:
        _secret(key)
        if not key:
            raise ValueError("an empty key cannot be a previous secret")


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
    max_connections_per_route: Annotated[
        int,
        setting(
            "connections one route (see `route_depth`) may hold at once; more requests on it wait "
            "`connect_timeout`, then 504, so a hung path leaves the rest of the pool to the "
            "others (0: half of `max_connections`)",
            ge=0,
        ),
    ] = 0
    route_depth: Annotated[
        int,
        setting(
            "path segments that name a route for `max_connections_per_route`: 1 groups "
            "`/api/search?q` under `/api`, 2 under `/api/search`",
            ge=1,
            le=16,
        ),
    ] = 1


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
    stop_timeout: Annotated[
        int,
        setting(
            "seconds a worker has to stop once `slotwise serve` is told to (SIGTERM, SIGINT); "
            "one still running then is killed, so the server always exits",
            ge=1,
        ),
    ] = 20
    metrics_public: Annotated[
        bool,
        setting(
            "`/_sw/metrics` answers anyone; else only loopback clients (as "
            "`trusted_proxies` gives them) and requests with the admin token "
            "(`Authorization: Bearer`, `SLOTWISE_ADMIN_TOKEN`)"
        ),
    ] = False
    metrics_dir: Annotated[
        str,
        setting(
            "directory where each worker writes its metrics for the others to add up at a "
            "scrape (empty: `slotwise serve` with several workers makes a temporary one)"
        ),
    ] = ""
    metrics_interval: Annotated[
        float,
        setting(
            "seconds between writes of a worker's metrics to `metrics_dir`: how far another "
            "worker's numbers may lag in a scrape",
            ge=0.05,
        ),
    ] = 1.0
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
    shed_work: Annotated[
        int,
        setting(
            "admission control: while a worker holds more requests than this (less those waiting "
            "for the upstream), requests that could be personalised are forwarded unchanged, "
            'counted as `slotwise_passthrough_total{reason="shed"}` (0: not a signal)',
            ge=0,
        ),
    ] = 128
    shed_queue_ms: Annotated[
        float,
        setting(
            "admission control: shed a share of the personalisable requests, growing while a "
            "worker's queue time (how long its own probe request, sent every 20 ms, waits "
            "before the worker starts it, ms) is over this and shrinking while it is under "
            "(0: not a signal, no probe)",
            ge=0.0,
        ),
    ] = 10.0
    shed_queue_requests: Annotated[
        int,
        setting(
            "admission control: a probe's queue time counts only if the worker took more "
            "requests than this while it waited (set it to the connections a worker serves at "
            "its normal peak: a closed loop of that many never has more ahead)",
            ge=0,
        ),
    ] = 64
    shed_busy: Annotated[
        float,
        setting(
            "admission control: shed the same way while a worker's event loop was busy (on a "
            "CPU or waiting for one) for more than this share of the last 50 ms, with more than "
            "16 requests in flight (0: not measured; 1: measured, never sheds)",
            ge=0.0,
            le=1.0,
        ),
    ] = 0.9
    gc_threshold: Annotated[
        int,
        setting(
            "each `slotwise serve` worker, once started, freezes what start-up built out of "
            "Python's cyclic garbage collector and collects its young generation after this many "
            "net allocations instead of Python's 700 (0: the collector as Python sets it)",
            ge=0,
        ),
    ] = 10_000


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
            "click-signing key, at least 16 characters, the same on every machine (empty: a "
            "random key kept in the store, shared by every proxy on it; on `memory://`, one "
            "per `slotwise serve` run)",
            check=_secret,
        ),
    ] = ""
    previous_secrets: Annotated[
        tuple[str, ...],
        setting(
            "click-signing keys being rotated out: links they signed still verify, nothing is "
            "signed with them; keep one as long as its links may be clicked",
            check=_secrets,
        ),
    ] = ()
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
    models_in_store: Annotated[
        bool,
        setting(
            "models also travel through the state store: `slotwise learn` copies each "
            "campaign's current version there, every `slotwise serve` takes it into its own "
            "`models_dir` (for proxies on machines without the learner's directory)"
        ),
    ] = False
    reload_interval: Annotated[
        float,
        setting(
            "seconds between checks for a newly published (or rolled back) model; a model that "
            "fails its checksum or VW's loader is rejected and logged, the previous one keeps "
            "serving",
            ge=0.1,
        ),
    ] = 5.0
    remembered_contexts: Annotated[
        int,
        setting(
            "contexts (usable signals) whose bandit distributions each worker remembers per "
            "campaign model, so that a request in a known context skips Vowpal Wabbit; about "
            "2.8 KB each at 3 slots of 10 variants; cleared when full; 0: none",
            ge=0,
        ),
    ] = 8192


def _smtp_security(value: str) -> None:
    if value not in ("starttls", "tls", "none"):
        raise ValueError(f"must be starttls, tls or none, not {value!r}")


def _variable_name(name: str) -> None:
    if name and (not name.replace("_", "a").isalnum() or name.upper().startswith("SLOTWISE_")):
        raise ValueError(
            f"{name!r} must name an environment variable (letters, digits, _) outside "
            "SLOTWISE_*, e.g. SMTP_PASSWORD"
        )


class NotifyConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[notify]``: the sender of trigger notifications (e-mail over SMTP; webhook endpoints
    are ``[webhooks.NAME]`` tables). docs/notifications.md."""

    sender: Annotated[
        bool,
        setting(
            "run the notification sender inside `slotwise serve` (one is active across every "
            "proxy on the store, by a lease); off: run `slotwise notify serve` instead"
        ),
    ] = True
    templates_dir: Annotated[
        str,
        setting(
            "directory of e-mail templates: `NAME.subject.txt`, `NAME.txt`, `NAME.html` (Jinja2, "
            'sandboxed; HTML autoescaped) for each `notify email "NAME"`'
        ),
    ] = ""
    smtp_host: Annotated[str, setting("SMTP server for `notify email` (empty: no e-mail)")] = ""
    smtp_port: Annotated[
        int, setting("SMTP port (587 submission, 465 tls, 25)", ge=1, le=65535)
    ] = 587
    smtp_security: Annotated[
        str,
        setting(
            "`starttls` (upgrade, required), `tls` (implicit TLS, port 465) or `none` "
            "(loopback relays only)",
            check=_smtp_security,
        ),
    ] = "starttls"
    smtp_ca_file: Annotated[
        str,
        setting(
            "CA bundle (PEM) the SMTP server's certificate must chain to (empty: the system's "
            "CAs); for a relay with its own CA"
        ),
    ] = ""
    smtp_username: Annotated[str, setting("SMTP user (empty: no authentication)")] = ""
    smtp_password_env: Annotated[
        str,
        setting(
            "name of the environment variable holding the SMTP password (never the password)",
            check=_variable_name,
        ),
    ] = ""
    smtp_from: Annotated[str, setting("the From address of notification e-mails")] = ""
    email_trait: Annotated[
        str, setting("the user trait holding the recipient's address (missing: dead letter)")
    ] = "email"
    timeout: Annotated[
        float, setting("seconds for one delivery attempt (webhook POST or SMTP session)", ge=0.1)
    ] = 10.0
    max_attempts: Annotated[
        int, setting("attempts before a notification becomes a dead letter", ge=1, le=100)
    ] = 8
    retry_base: Annotated[
        float,
        setting("seconds before the first retry; doubles each attempt, with jitter", ge=0.01),
    ] = 30.0
    retry_max: Annotated[float, setting("longest wait between two attempts", ge=0.01)] = 3600.0
    lease_seconds: Annotated[
        float,
        setting(
            "length of the sender's lease in the store; a standby takes over within two "
            "leases of the active sender's death",
            ge=0.5,
        ),
    ] = 10.0
    poll_interval: Annotated[
        float, setting("seconds between the sender's reads of the outbox", ge=0.01)
    ] = 0.5
    concurrency: Annotated[int, setting("deliveries in flight at once", ge=1, le=1000)] = 16
    retention_days: Annotated[
        float,
        setting(
            "days the outbox, replay requests and dead letters are kept; older records are "
            "dropped (list and replay dead letters before then)",
            ge=1.0,
        ),
    ] = 30.0


class LogConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[log]``: the log lines of the proxy and the learner (slotwise.proxy.logs)."""

    format: Annotated[
        Literal["auto", "json", "text"],
        setting(
            "`json` (one object per line: time, level, logger, message, request_id, campaign, "
            "cause), `text`, or `auto`: text when stderr is a terminal, else JSON"
        ),
    ] = "auto"
    level: Annotated[
        Literal["debug", "info", "warning", "error"],
        setting("the least severe level written (`--log-level`)"),
    ] = "info"
    access: Annotated[
        bool,
        setting(
            "one `slotwise.access` line per proxied request (request_id, method, path, status, "
            "duration_ms, client)"
        ),
    ] = False
    repeat_interval: Annotated[
        float,
        setting(
            "seconds within which the same line is not written twice (it is counted, and the "
            "next one says how many were held back; fail-opens: per cause); 0: every line",
            ge=0.0,
        ),
    ] = 60.0


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

    enabled: Annotated[
        bool,
        setting(
            "`slotwise learn` computes the dashboard and the proxies serve it (false: neither;"
            " /_sw/dashboard answers 404 no_dashboard)"
        ),
    ] = True
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
