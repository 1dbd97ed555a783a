"""The proxy as a pure ASGI application.

Every path outside ``/_sw/`` goes to the upstream through slotwise.proxy.decide. The proxy's
own endpoints: ``/_sw/health`` (the process is up), ``/_sw/ready`` (it can serve: forwarding
runs and, where a policy directory is configured, policies are loaded; the store is not
asked, since forwarding and personalisation go on without it), ``/_sw/health/store`` (the
store answers), ``/_sw/metrics`` (Prometheus text, ``slotwise_store_up`` among them),
``/_sw/click`` (signed click redirect), and the event endpoints of slotwise.proxy.events
(``/_sw/px``, ``/_sw/events``, ``/_sw/admin/...``). The first five are one table (path ->
handler and methods), which answers 405 with ``Allow``; every other ``/_sw/`` path goes to
the events router, and 404 when it has no such route. Routing reads the request target as
sent (``raw_path``): only a literal ``/_sw/`` prefix is the proxy's, ``/_sw%2fhealth`` goes
upstream like any other path. The checks of a request's head
(slotwise.proxy.http_body.head_refusal: header size, Host, target) apply to both.

Long-lived resources (upstream pool, store, providers, decision log, policy watcher) are made
in the lifespan and kept on the app's :class:`Runtime`; nothing lives in module globals.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from starlette.exceptions import HTTPException

from slotwise.plugins.builtin.configs import ConsentConfig
from slotwise.plugins.loaded import ProviderSet
from slotwise.proxy import queue_probe
from slotwise.proxy.adapters.json import JsonFields
from slotwise.proxy.admission import Admission
from slotwise.proxy.bandit.runtime import BanditRuntime
from slotwise.proxy.bandit.store import ModelStore
from slotwise.proxy.chooser import BanditChooser, Chooser, RuleChooser
from slotwise.proxy.collector import collector_metrics
from slotwise.proxy.config import Settings, load_settings
from slotwise.proxy.decide import Engine, Limits
from slotwise.proxy.entry import AsgiEntry, is_ours, proxy
from slotwise.proxy.erased_request import empty_personal_caches, watch_erasures
from slotwise.proxy.events.rate_limit import EventRateLimit, storage_for
from slotwise.proxy.events.tasks import stop_task
from slotwise.proxy.http_body import head_refusal, send_error
from slotwise.proxy.http_hygiene import (
    REQUEST_ID,
    ForwardingPolicy,
    header,
    is_loopback,
    is_request_id,
)
from slotwise.proxy.identity import IdentityCookie
from slotwise.proxy.logs import ACCESS, FailOpenLog
from slotwise.proxy.metrics import ProxyMetrics
from slotwise.proxy.metrics_share import SharedMetrics, process_metrics
from slotwise.proxy.policy_snapshot import PolicySnapshot
from slotwise.proxy.tracking import CLICK_PATH, ClickSigner, new_decision_id
from slotwise.proxy.upstream import Origin, PoolSettings, Upstream, UpstreamPool
from slotwise.types import Receive, Scope, Send

if TYPE_CHECKING:
    from slotwise.proxy.catalogue import LiveCatalogue
    from slotwise.proxy.recommend.runtime import RecsRuntime
    from slotwise.proxy.report.live import DashboardCache

log = logging.getLogger("slotwise.proxy")
access_log = logging.getLogger(ACCESS)
_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
_READ = frozenset({"GET", "HEAD"})
# the event endpoints a browser or an ad calls (rate-limited, CORS); not the admin API
_PUBLIC_EVENT_PATHS = frozenset({"/_sw/px", "/_sw/events", "/_sw/events/validate"})
_STORE_PING_TIMEOUT = 1.0  # seconds: /_sw/health/store and slotwise_store_up
# RFC 3986's reserved and unreserved characters, and "%" (the target may be encoded already)
_URL_CHARACTERS = ":/?#[]@!$&'()*+,;=%~"


Handler = Callable[["Runtime", Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One of the proxy's own endpoints: its handler and the methods it answers."""

    handler: Handler
    methods: frozenset[str] = _READ
    allow: str = "GET, HEAD"  # a 405's Allow header
    answers: str = "GET"  # a 405's message (HEAD goes without saying beside GET)


@dataclass(slots=True)
class Runtime:
    """The resources of one running app (set up in its lifespan)."""

    engine: Engine
    events_app: Any = None
    collector: Any = None
    store: Any = None
    bandit: BanditRuntime | None = None  # when bandit.models_dir is configured
    notify_sender: Any = None  # slotwise.proxy.notify.sender.Sender, when notify.sender is on
    shared_metrics: SharedMetrics | None = None  # when proxy.metrics_dir is configured
    rate_limit: EventRateLimit | None = None  # when events.rate_limit is configured
    public_events_app: Any = None  # the events router behind CORS (events.cors_origins)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class ProxyApp:
    """The ASGI app. ``upstream``, ``store`` and ``chooser`` may be injected (tests)."""

    def __init__(
        self,
        settings: Settings,
        *,
        upstream: Upstream | None = None,
        chooser: Chooser | None = None,
        policies: PolicySnapshot | None = None,
        load_plugins: bool = True,
    ) -> None:
        self.settings = settings
        self.metrics = ProxyMetrics()
        self._upstream = upstream
        self._chooser = chooser
        self._policies = policies
        self._load_plugins = load_plugins
        self.runtime: Runtime | None = None
        self._access_log = settings.log.access
        self._live: DashboardCache | None = None  # the dashboard, from its first request on
        # path -> endpoint; every other /_sw/ path goes to the event endpoints' router
        self._endpoints: dict[str, Endpoint] = {
            "/_sw/health": Endpoint(self._health),
            "/_sw/ready": Endpoint(self._ready),
            "/_sw/health/store": Endpoint(self._store_health),
            "/_sw/metrics": Endpoint(self._metrics),
            CLICK_PATH: Endpoint(self._click),
            queue_probe.PATH: Endpoint(self._queue_probe),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            runtime = self.runtime
            if runtime is None:
                return await _plain(send, 503, b"starting\n")
            if is_ours(scope):
                return await self._own(runtime, scope, receive, send)
            if self._access_log:
                return await self._logged(runtime, scope, receive, send)
            return await proxy(runtime.engine, scope, receive, send)
        if kind == "lifespan":
            return await self._lifespan(receive, send)
        if kind == "websocket":  # not proxied: close politely
            await send({"type": "websocket.close", "code": 1008})

    async def _logged(self, runtime: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
        """A proxied request with its access log line (log.access): the X-Request-Id is settled
        here, so the line and the upstream see the same one."""
        started = time.perf_counter()
        headers = list(scope["headers"])
        request_id = header(headers, REQUEST_ID)
        if request_id is None or not is_request_id(request_id):
            request_id = new_decision_id().encode("ascii")
            headers = [(n, v) for n, v in headers if n.lower() != REQUEST_ID]
            headers.append((REQUEST_ID, request_id))
        status = 0

        async def watched(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await proxy(runtime.engine, {**scope, "headers": headers}, receive, watched)
        finally:
            client = scope.get("client")
            access_log.info(
                "%s %s %s",
                scope["method"],
                scope["path"],
                status or "-",
                extra={
                    "request_id": request_id.decode("ascii"),
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status or None,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    "client": client[0] if client else None,
                },
            )

    # -- /_sw/ endpoints --------------------------------------------------------------------

    async def _own(self, runtime: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
        refused = head_refusal(scope, runtime.engine.limits.max_header_bytes)
        if refused is not None:
            self.metrics.refused.inc(refused.reason)
            return await send_error(send, refused.status, refused.code, refused.message)
        path: str = scope["path"]
        endpoint = self._endpoints.get(path)
        if endpoint is None:
            return await self._events(runtime, scope, receive, send)
        if scope["method"] not in endpoint.methods:
            message = f"{path} answers {endpoint.answers}"
            return await _not_allowed(send, message, endpoint.allow)
        return await endpoint.handler(runtime, scope, receive, send)

    async def _queue_probe(
        self, runtime: Runtime, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """This worker's own probe (slotwise.proxy.queue_probe): it has waited its queue time;
        anyone else's request (another worker's probe, a client) is an unknown path."""
        admission = runtime.engine.admission
        token = header(scope["headers"], queue_probe.HEADER)
        if (
            token is None
            or admission.token is None
            or not hmac.compare_digest(token, admission.token)
        ):
            path = scope["path"]
            return await send_error(send, 404, "not_found", f"no endpoint at {path}")
        admission.probed()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def _health(self, runtime: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
        await _plain(send, 200, b"ok\n")

    async def _ready(self, runtime: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
        problems = self._readiness(runtime)
        body = "ready\n" if not problems else "not ready: " + "; ".join(problems) + "\n"
        await _plain(send, 503 if problems else 200, body.encode())

    async def _store_health(
        self, runtime: Runtime, scope: Scope, receive: Receive, send: Send
    ) -> None:
        problem = await _store_problem(runtime)
        body = "store: ok\n" if problem is None else f"store: {problem}\n"
        await _plain(send, 200 if problem is None else 503, body.encode())

    async def _metrics(self, runtime: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
        refused = self._metrics_refusal(runtime, scope)
        if refused == "token":
            challenge = ((b"www-authenticate", b"Bearer"),)
            message = "a valid admin token is needed"
            return await send_error(send, 401, "unauthorized", message, challenge)
        if refused == "private":
            message = (
                "/_sw/metrics answers loopback clients and the admin token (Authorization: "
                "Bearer); set proxy.metrics_public to open it"
            )
            return await send_error(send, 403, "metrics_private", message)
        store_up = await _store_problem(runtime) is None
        text = self._own_metrics(runtime)
        if runtime.shared_metrics is not None:  # every worker's numbers, added up
            text = await asyncio.to_thread(runtime.shared_metrics.merged, text)
        text += (
            "# HELP slotwise_store_up Whether the state store answered a ping (1) or not (0).\n"
            "# TYPE slotwise_store_up gauge\n"
            f"slotwise_store_up {int(store_up)}\n"
        )
        # the store's figures, the same in every worker (not to be added up across them): the
        # revert set as this worker read it, the dashboard's KPIs, the notification sender's
        text += "\n".join(runtime.engine.guardrails.metrics()) + "\n"
        live = self._live_report()
        if live is not None:
            text += live.metrics
        if store_up:
            text += await _notify_metrics(runtime)
        await _plain(send, 200, text.encode(), b"text/plain; version=0.0.4; charset=utf-8")

    def _metrics_refusal(self, runtime: Runtime, scope: Scope) -> str | None:
        """Why this scrape is refused ("private", or "token": a wrong one), or None: unless
        proxy.metrics_public, the client (as the trusted-proxy rules give it) must be on
        loopback or present the admin token."""
        s = self.settings
        if s.proxy.metrics_public:
            return None
        peer = scope.get("client")
        client = runtime.engine.forwarding.client_address(peer[0] if peer else "", scope["headers"])
        if is_loopback(client):
            return None
        given = header(scope["headers"], b"authorization") or b""
        scheme, _, token = given.partition(b" ")
        expected = (s.events.admin_token or "").encode()
        if expected and scheme.lower() == b"bearer" and hmac.compare_digest(token, expected):
            return None
        return "token" if given else "private"

    def _own_metrics(self, runtime: Runtime) -> str:
        """This worker's metrics (what it writes for the others to add up)."""
        pid = os.getpid()
        own = self.metrics.render(self._extra_metrics(runtime))
        return own + process_metrics(pid) + collector_metrics(pid)

    async def _events(self, runtime: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
        """The event endpoints' router, the table's fallback; else 404. The public event
        paths get the per-client rate limit and CORS (events.rate_limit, events.cors_origins)."""
        path = scope["path"]
        events_app = runtime.events_app
        if path in _PUBLIC_EVENT_PATHS:
            if runtime.rate_limit is not None and scope["method"] != "OPTIONS":
                peer = scope.get("client")
                client = runtime.engine.forwarding.client_address(
                    peer[0] if peer else "", scope["headers"]
                )
                wait = await runtime.rate_limit.retry_after(client)
                if wait is not None:
                    self.metrics.refused.inc("rate_limited")
                    message = f"too many requests from {client}: retry after {wait}s"
                    retry = ((b"retry-after", str(wait).encode()),)
                    return await send_error(send, 429, "rate_limited", message, retry)
            events_app = runtime.public_events_app or events_app
        if events_app is not None:
            try:  # with "app" in the scope, starlette raises its 404 and 405 for us to answer
                await events_app({**scope, "app": self}, receive, send)
                return
            except HTTPException as exc:
                if exc.status_code == 405:
                    allow = (exc.headers or {}).get("Allow", "")
                    return await _not_allowed(send, f"{path} answers {allow}", allow)
        return await send_error(send, 404, "not_found", f"no endpoint at {path}")

    async def _click(self, runtime: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        decision_id = (query.get("d") or [""])[0]
        target = (query.get("u") or [""])[0]
        signature = (query.get("s") or [""])[0]
        signer = runtime.engine.signer
        if (
            not decision_id
            or not target.startswith(("http://", "https://"))
            or not signer.verify(decision_id, target, signature)
        ):
            self.metrics.refused.inc("bad_click_signature")
            return await send_error(send, 400, "invalid_click_link", "invalid or unsigned link")
        self.metrics.clicks.inc()
        if runtime.collector is not None:
            await self._record_click(runtime, decision_id)
        headers = [
            # the signature covers the target as written; the header gets it percent-encoded, so
            # no control or non-ASCII character reaches the header (or splits it)
            (b"location", quote(target, safe=_URL_CHARACTERS).encode("ascii")),
            (b"cache-control", b"no-store"),
            (b"content-length", b"0"),
        ]
        await send({"type": "http.response.start", "status": 302, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def _record_click(self, runtime: Runtime, decision_id: str) -> None:
        from slotwise.proxy.events.schema import Rejection, convert_event

        event = convert_event(
            {"type": "click", "decision_id": decision_id, "id": f"{decision_id}.click"}
        )
        if isinstance(event, Rejection):
            return
        try:
            await runtime.collector.collect([event], consent="contextual")
        except Exception as exc:  # the redirect matters more than the count
            log.warning("click for decision %s not recorded: %s", decision_id, exc)

    def _readiness(self, runtime: Runtime) -> list[str]:
        """Why this process cannot serve (empty: it can). The store is not among the reasons:
        forwarding and personalisation go on while it is down (events answer 503, decisions
        queue), and a store shared by every replica would take them all out of rotation."""
        problems = []
        if (
            runtime.engine.policies.directory is not None
            and runtime.engine.policies.current is None
        ):
            problems.append(f"policies not loaded ({runtime.engine.policies.last_error})")
        return problems

    def _live_report(self) -> DashboardCache | None:
        """The copy of the dashboard `slotwise learn` publishes, refreshed in the background
        from the first request for it (never awaited by a request)."""
        if not self.settings.dashboard.enabled:
            return None
        if self._live is None and self.runtime is not None and self.runtime.store is not None:
            from slotwise.proxy.report import live

            self._live = live.DashboardCache(
                self.runtime.store, self.settings.dashboard.refresh_interval
            )
            self._live.start()
        return self._live

    def _dashboard_page(self) -> bytes:
        live = self._live_report()
        return live.page if live is not None else b""

    def _stop_live(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _extra_metrics(self, runtime: Runtime) -> str:
        log_ = runtime.engine.decision_log
        lines = [
            "# HELP slotwise_decision_log_pending Decision records queued for the store.",
            "# TYPE slotwise_decision_log_pending gauge",
            f"slotwise_decision_log_pending {getattr(log_, 'pending', 0)}",
            "# HELP slotwise_decision_log_dropped Decision records dropped (store too slow).",
            "# TYPE slotwise_decision_log_dropped gauge",
            f"slotwise_decision_log_dropped {getattr(log_, 'dropped', 0)}",
        ]
        admission = runtime.engine.admission
        lines += [
            "# HELP slotwise_work_in_flight Proxied requests taken, less those awaiting the "
            "upstream (admission control).",
            "# TYPE slotwise_work_in_flight gauge",
            f"slotwise_work_in_flight {admission.active - admission.waiting}",
            "# HELP slotwise_queue_seconds How long this worker's last probe request waited "
            "before the worker started it (admission control).",
            "# TYPE slotwise_queue_seconds gauge",
            f"slotwise_queue_seconds {admission.queue:.6f}",
            "# HELP slotwise_queue_requests Requests this worker took while its last probe "
            "request waited (the queue ahead of it).",
            "# TYPE slotwise_queue_requests gauge",
            f"slotwise_queue_requests {admission.ahead}",
            "# HELP slotwise_shed_share Share of personalisable requests shed for queue time.",
            "# TYPE slotwise_shed_share gauge",
            f"slotwise_shed_share {admission.ration:.3f}",
            "# HELP slotwise_loop_busy Share of the last window this worker's event loop was "
            "busy or waiting for a CPU (admission control).",
            "# TYPE slotwise_loop_busy gauge",
            f"slotwise_loop_busy {admission.busy:.3f}",
            "# HELP slotwise_shedding Whether this worker sheds personalisation now (1) or not.",
            "# TYPE slotwise_shedding gauge",
            f"slotwise_shedding {int(admission.shedding)}",
        ]
        policy = runtime.engine.policies.current
        lines += [
            "# HELP slotwise_policy_info The serving policy set version.",
            "# TYPE slotwise_policy_info gauge",
            f'slotwise_policy_info{{version="{policy.version if policy else ""}"}} 1',
        ]
        if runtime.bandit is not None:
            lines += [
                "# HELP slotwise_model_info The model serving each campaign (v0: untrained).",
                "# TYPE slotwise_model_info gauge",
            ]
            versions = runtime.bandit.snapshot.versions()
            lines += [
                f'slotwise_model_info{{campaign="{name}",version="{version}"}} 1'
                for name, version in sorted(versions.items())
            ]
            lines += [
                "# HELP slotwise_models_rejected_total Model files refused (checksum, loader).",
                "# TYPE slotwise_models_rejected_total counter",
                f"slotwise_models_rejected_total {len(runtime.bandit.errors)}",
            ]
        providers = runtime.engine.providers
        text = "\n".join(lines) + "\n"
        if providers is not None and hasattr(providers, "render_metrics"):
            text += providers.render_metrics()
        return text

    # -- lifespan ---------------------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        stack = contextlib.AsyncExitStack()
        try:
            self.runtime = await self._start(stack)
        except Exception as exc:
            await stack.aclose()
            log.error("slotwise proxy failed to start: %s", exc)
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        for task in self.runtime.tasks:
            task.cancel()
        await stack.aclose()
        self.runtime = None
        await send({"type": "lifespan.shutdown.complete"})

    async def _start(self, stack: contextlib.AsyncExitStack) -> Runtime:
        from starlette.routing import Mount, Router

        from slotwise.proxy.events import DecisionLog, EventCollector
        from slotwise.proxy.events.endpoints import events_routes
        from slotwise.proxy.offer_budget import OfferBudgets
        from slotwise.proxy.offer_chooser import OfferChooser
        from slotwise.proxy.offers_config import offers_config
        from slotwise.proxy.state import open_store

        s = self.settings
        upstream = self._upstream
        if upstream is None:
            upstream = UpstreamPool(Origin.parse(s.upstream.url), _pool_settings(s))
            stack.push_async_callback(upstream.aclose)
        store = await stack.enter_async_context(open_store(s.store.url))
        offers = offers_config(s.offers)
        collector = await stack.enter_async_context(EventCollector(store, s.events, offers=offers))
        decision_log = await stack.enter_async_context(
            DecisionLog(store, erasure=collector.erasure)
        )
        providers = None
        if self._load_plugins:
            from slotwise.plugins.profile_source import StoreProfileSource
            from slotwise.plugins.provider import ProviderServices
            from slotwise.plugins.registry import load_providers
            from slotwise.proxy.caps import cap_keys
            from slotwise.proxy.events.aliases import alias_key
            from slotwise.proxy.events.erasure import erased_key
            from slotwise.proxy.state import subject_key

            providers = load_providers(s.plugins)
            collector.erasure.hold(_forget_personal_caches(providers))
            # the caps of the policy being served (made below): read with the profile
            serving: list[PolicySnapshot] = []
            caps = cap_keys(lambda: serving[0].current if serving else None)
            profiles = StoreProfileSource(store, subject_key, erased_key, alias_key, caps)
            collector.erasure.hold(profiles.forget)  # its key cache holds user ids
            await providers.start(ProviderServices(profiles=profiles))
            stack.push_async_callback(providers.aclose)
            schema = providers.schema
        else:
            from slotwise.types import SignalSchema

            schema = SignalSchema()
        policies = self._policies
        if policies is None:
            directory = Path(s.proxy.policies) if s.proxy.policies else None
            policies = PolicySnapshot(directory, schema, self.metrics)
            policies.load()
        if self._load_plugins:
            serving.append(policies)
        from slotwise.proxy.caps import CapCounter
        from slotwise.proxy.triggers import TriggerEngine

        # every accepted personal event a trigger listens to re-evaluates the user's triggers
        collector.triggers = TriggerEngine(
            store, lambda: policies.current, ttl=s.events.user_state_ttl
        )
        catalogue, recs = await _recommenders(s, store, collector)
        if recs is not None:  # section KPIs from the lists' pixels and attributed events
            from slotwise.proxy.recommend.kpis import SectionKpis

            kpis = SectionKpis(store, self.metrics.recs_kpis, lambda: policies.current)
            collector.after_store.append(kpis.observe)
        chooser = self._chooser
        bandit = bandit_task = None
        if chooser is None and s.bandit.models_dir:
            bandit, bandit_task = _bandit(Path(s.bandit.models_dir), policies, s, store)
            chooser = BanditChooser(bandit)
        budgets = OfferBudgets(store, offers) if offers.budgets else None
        if budgets is not None:
            collector.after_store.append(budgets.charge)
        secret = s.tracking.secret.encode() or await _store_click_key(store)
        previous = [key.encode() for key in s.tracking.previous_secrets]
        admission = Admission(
            s.proxy.shed_work,
            s.proxy.shed_queue_ms / 1000.0,
            s.proxy.shed_busy,
            s.proxy.shed_queue_requests,
        )
        admission.start()
        stack.callback(admission.stop)
        if admission.max_queue > 0:  # the queue outside the loop is read by a probe request
            admission.token = queue_probe.new_token()
            probe = queue_probe.run(admission, s.proxy.host, s.proxy.port)
            probing = asyncio.create_task(probe)
            stack.push_async_callback(stop_task, probing)
        engine = Engine(
            upstream=upstream,
            policies=policies,
            chooser=chooser or RuleChooser(),
            decision_log=decision_log,
            metrics=self.metrics,
            signer=ClickSigner(secret, s.tracking.public_url, previous),
            providers=providers,
            limits=Limits(
                max_header_bytes=s.proxy.max_header_bytes,
                max_body_bytes=s.proxy.max_body_bytes,
                body_timeout=s.proxy.body_timeout,
                max_rewrite_bytes=s.proxy.max_rewrite_bytes,
                decision_deadline=s.proxy.decision_deadline_ms / 1000.0,
                signals_deadline=s.proxy.signals_deadline_ms / 1000.0,
            ),
            forwarding=ForwardingPolicy.parse(s.proxy.trusted_proxies),
            admission=admission,
            json_fields=_json_fields(s),
            public_url=s.tracking.public_url,
            allowed_hosts=frozenset(
                h.lower().encode("ascii", "replace") for h in s.tracking.allowed_hosts
            ),
            caps=CapCounter(store),
            offers=OfferChooser(bandit, offers, budgets),
            fail_open_log=FailOpenLog(s.log.repeat_interval),
            identity=IdentityCookie(
                name=s.tracking.user_cookie,
                max_age=s.tracking.user_cookie_max_age,
                secure=s.tracking.user_cookie_secure,
                same_site=s.tracking.user_cookie_same_site,
                domain=s.tracking.user_cookie_domain,
            ),
            recs=recs,
        )
        routes = events_routes(
            collector,
            consent=_consent_config(providers),
            forwarding=engine.forwarding,
            catalogue=catalogue,
            dashboard=self._dashboard_page if s.dashboard.enabled else None,
        )
        events_app = Router(routes=[Mount("/_sw", routes=routes)])
        runtime = Runtime(engine, events_app, collector, store, bandit)
        _event_edges(s, runtime, stack)
        stack.callback(self._stop_live)
        background = [bandit_task, engine.caps.run() if engine.caps is not None else None]
        background.append(budgets.run() if budgets is not None else None)
        if recs is not None:
            await recs.refresh(policies.current)
            background += [recs.catalogue.watch(), recs.refresh_loop(policies)]
        if policies.directory is not None and s.proxy.reload_interval > 0:
            background.append(policies.watch(s.proxy.reload_interval))
        if providers is not None and any(p.cache is not None for p in providers.personal):
            # an erasure answered by another worker or proxy empties this one's caches too
            background.append(watch_erasures(store, providers))
        if s.guardrail.enabled:  # the revert set, read in the background (never on a request)
            background.append(engine.guardrails.watch(store, s.guardrail.refresh_interval))
        runtime.tasks += [asyncio.create_task(work) for work in background if work is not None]
        if s.notify.sender:
            runtime.notify_sender = await _notify_sender(s, store, stack, lambda: policies.current)
        if s.proxy.metrics_dir:
            shared = runtime.shared_metrics = SharedMetrics(Path(s.proxy.metrics_dir))
            interval = s.proxy.metrics_interval
            writer = shared.keep_writing(lambda: self._own_metrics(runtime), interval)
            runtime.tasks.append(asyncio.create_task(writer))
        return runtime


def _event_edges(s: Settings, runtime: Runtime, stack: contextlib.AsyncExitStack) -> None:
    """The public event endpoints' per-client rate limit and CORS, when configured."""
    if s.events.rate_limit:
        runtime.rate_limit = EventRateLimit(s.events.rate_limit, storage_for(s.store.url))
        stack.push_async_callback(runtime.rate_limit.aclose)
    if s.events.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        runtime.public_events_app = CORSMiddleware(
            runtime.events_app,
            allow_origins=list(s.events.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["content-type"],
            max_age=600,
        )


async def _notify_sender(
    s: Settings, store: Any, stack: contextlib.AsyncExitStack, policy: Callable[[], Any]
) -> Any:
    """The notification sender (and the scheduled audience pushes), run for the app's life
    (one across every proxy works: a lease in the store); stopped, its lease given up and its
    connections closed, before the store closes."""
    from slotwise.proxy.notify.runtime import build_sender, trigger_check

    sender = build_sender(s, store, still_due=trigger_check(store), policy=policy)
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))

    async def finish() -> None:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, timeout=s.notify.timeout + 5.0)

    stack.push_async_callback(finish)
    return sender


async def _notify_metrics(runtime: Runtime) -> str:
    from slotwise.proxy.notify import stats

    try:
        async with asyncio.timeout(_STORE_PING_TIMEOUT):
            return await stats.render(runtime.store)
    except Exception:  # the other metrics matter more than these
        return ""


async def _recommenders(
    s: Settings, store: Any, collector: Any
) -> tuple[LiveCatalogue | None, RecsRuntime | None]:
    """With a catalogue feed: the live catalogue, the recommenders' runtime, and the
    collector taught to update their state (recommendations.md). A bad feed stops the start."""
    if not s.catalogue.feed:
        return None, None
    from slotwise.proxy.catalogue import LiveCatalogue
    from slotwise.proxy.recommend.observe import RecsObserver
    from slotwise.proxy.recommend.runtime import RecsRuntime

    catalogue = LiveCatalogue(s.catalogue, store)
    await catalogue.load()
    collector.recs = RecsObserver(store, s.recommendations)
    return catalogue, RecsRuntime(catalogue, store, s.recommendations)


async def _store_click_key(store: Any) -> bytes:
    """The click key every process on this store shares (slotwise.proxy.click_key); while the
    store cannot be read, one of this process's own, said loudly."""
    from slotwise.proxy.click_key import shared_click_key

    try:
        async with asyncio.timeout(_STORE_PING_TIMEOUT * 5):
            return await shared_click_key(store)
    except Exception as exc:
        log.error(
            "the click-signing key cannot be read from the store (%s): this process signs with "
            "its own until it restarts, so its click links fail on other processes; set "
            "tracking.secret to avoid depending on the store for it",
            exc or type(exc).__name__,
        )
        return secrets.token_bytes(32)


def _forget_personal_caches(providers: ProviderSet) -> Callable[[frozenset[str]], Awaitable[int]]:
    """An erasure empties the TTL caches of personal providers (their keys are the
    provider's own, so the erased user's entries cannot be told apart)."""

    async def forget(subjects: frozenset[str]) -> int:
        empty_personal_caches(providers)
        return 0  # no decision records

    return forget


async def _store_problem(runtime: Runtime) -> str | None:
    """Why the store does not answer a ping within a second, or None when it does."""
    if runtime.store is None:
        return None
    try:
        async with asyncio.timeout(_STORE_PING_TIMEOUT):
            await runtime.store.ping()
    except TimeoutError:
        return f"no answer within {_STORE_PING_TIMEOUT:g}s"
    except Exception as exc:
        return str(exc) or type(exc).__name__
    return None


def _bandit(
    models_dir: Path, policies: PolicySnapshot, s: Settings, store: Any
) -> tuple[BanditRuntime, Coroutine[Any, Any, None]]:
    """The bandit over the model store, and the task that hot-reloads its models (taking the
    learner's from the state store first, with bandit.models_in_store)."""
    from slotwise.proxy.bandit.mirror import ModelMirror

    models_dir.mkdir(parents=True, exist_ok=True)
    models = ModelStore(models_dir)
    runtime = BanditRuntime(models, remember=s.bandit.remembered_contexts)
    mirror = ModelMirror(store, models) if s.bandit.models_in_store else None
    if policies.current is not None:
        runtime.install_policy_set(policies.current)
    policies.on_swap.append(runtime.install_policy_set)

    async def reload_models() -> None:
        reported = 0
        while True:
            await asyncio.sleep(s.bandit.reload_interval)
            try:
                if mirror is not None:
                    await mirror.pull()
                changed = await asyncio.to_thread(runtime.reload)
            except Exception as exc:  # a broken store must not stop the reloads
                log.error("model reload failed, keeping the serving models: %s", exc)
                continue
            if changed:
                log.info("models reloaded for %s", ", ".join(changed))
            for error in runtime.errors[reported:]:
                log.error("model rejected, the previous one keeps serving: %s", error)
            reported = len(runtime.errors)

    return runtime, reload_models()


def _consent_config(providers: ProviderSet | None) -> ConsentConfig | None:
    """The consent provider's validated config, so events judge consent as decisions do."""
    loaded = providers.by_name.get("consent") if providers is not None else None
    config = loaded.provider.config if loaded is not None else None
    return config if isinstance(config, ConsentConfig) else None


def _pool_settings(s: Settings) -> PoolSettings:
    upstream = s.upstream
    return PoolSettings(
        max_connections=upstream.max_connections,
        max_idle=upstream.max_idle,
        idle_expiry=upstream.idle_expiry,
        connect_timeout=upstream.connect_timeout,
        pool_timeout=upstream.connect_timeout,
        response_timeout=upstream.timeout,
        read_timeout=upstream.read_timeout,
        max_per_route=upstream.max_connections_per_route,
        route_depth=upstream.route_depth,
    )


def _json_fields(s: Settings) -> JsonFields:
    adapters = s.adapters
    return JsonFields.from_strings(
        campaign_id=adapters.json_campaign_id,
        creative_id=adapters.json_creative_id,
        placement=adapters.json_placement,
        impression_trackers=adapters.json_impression_trackers,
        click_trackers=adapters.json_click_trackers,
        click_urls=adapters.json_click_urls,
    )


async def _not_allowed(send: Send, message: str, allow: str) -> None:
    await send_error(send, 405, "method_not_allowed", message, ((b"allow", allow.encode()),))


async def _plain(
    send: Send, status: int, body: bytes, content_type: bytes = b"text/plain; charset=utf-8"
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def app_from_env() -> AsgiEntry:
    """The app factory the ASGI server calls in each worker (settings from SLOTWISE_*): the
    app behind its compiled entry (slotwise.proxy.entry)."""
    from slotwise.proxy.logs import configure

    config = os.environ.get("SLOTWISE_CONFIG")
    settings = load_settings(Path(config) if config else None)
    configure(settings.log)  # this worker's lines, in the configured shape
    return AsgiEntry(ProxyApp(settings))
