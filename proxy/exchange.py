"""One request's exchange: what ``handle`` carries from step to step.

slotwise.proxy.decide makes one :class:`Exchange` per proxied request and drives it through
named steps (read the request, start the fetch, gather signals, read the response, open the
document, run the personalisers, log, answer); each step reads and fills it. It holds the
request (scope, method, path, body), the policy snapshot read once for the whole request, the
upstream's response and body, the gathered signals, the parsed document, the decision records
and the outcome (a rewritten body, a passthrough reason, or a fail-open cause).

It also keeps which slot locations of which ad unit a personalisation has claimed
(:meth:`Exchange.claim`), so that a later one never writes the same place: only the locations
two personalisations of the policy set write (``shared``) are tracked at all.

One slots object per request, created once; touched by one request's steps only.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from slotwise.plugins.gather import Gathered
from slotwise.proxy.decision_log import DecisionRecord, failed
from slotwise.proxy.http_hygiene import ForwardingPolicy, header
from slotwise.types import NoHistory, Scope

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledPolicySet
    from slotwise.dsl.location import Location
    from slotwise.plugins.loaded import ProviderSet
    from slotwise.proxy.adapters import Document
    from slotwise.proxy.recommend.runtime import Prepared
    from slotwise.proxy.upstream import UpstreamResponse

MAX_UNITS: Final = 16  # ad units personalised per response (bids, VAST ads)
NO_SIGNALS: Final = Gathered(signals={}, personal=False, user_id=None, history=NoHistory())
# RFC 3986's host (registered name, IPv4 or bracketed IPv6) and optional port: the Host header
# becomes the origin of the tracker URLs the proxy writes, so nothing else may pass
_HOST = re.compile(
    rb"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?"
)

Records = list[tuple[DecisionRecord, str | None]]  # (decision record, subject)
_NOTHING: frozenset[Location] = frozenset()


class FailOpen(Exception):
    """Personalisation gave up; the upstream response goes out unchanged.

    ``records`` are the decisions already taken for this response, marked with the cause and
    without served slots (nothing was served): they are still logged.
    """

    def __init__(self, cause: str, records: Records | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.records = [(failed(record, cause), subject) for record, subject in records or ()]


@dataclass(slots=True, init=False, eq=False)
class Exchange:
    """One proxied request, from its head to the answer (see the module docstring)."""

    scope: Scope
    started: float  # perf_counter at the request's start
    method: str
    path: str
    body: bytes  # the request body
    policy: CompiledPolicySet | None  # the snapshot this request reads, read once
    candidate: bool  # a campaign could apply (policies loaded, GET or POST)
    lists: bool  # the policy fills or reorders product lists and a catalogue is served
    providers: ProviderSet | None  # set when a campaign could apply: gather from these
    early: bool  # gather while the upstream answers
    gathered: Gathered
    issued: str | None  # a fresh user id for the answer's id cookie (slotwise.proxy.identity)
    prepared: Prepared | None  # what recommendations and re-ranks read (RecsRuntime.prepare)
    response: UpstreamResponse | None
    raw: bytes  # the upstream body as it came (possibly compressed)
    document: Document | None
    codings: list[bytes] | None  # the body's content codings
    now: float  # the decisions' time
    records: Records | None  # the decision records, once there is one
    shared: frozenset[Location]  # locations two personalisations write
    claimed: set[tuple[int, Location]] | None  # (unit index, location) taken
    changed: bool  # a personalisation wrote into the document
    applied: bool  # a campaign applied to a unit (decided or skipped)
    selected: bool | None  # for early_signals: did one apply (None: not known)
    out: bytes | None  # the rewritten body
    reason: str | None  # why nothing was personalised (passthrough)
    cause: str | None  # why personalisation gave up (fail-open)
    request_id: bytes  # the X-Request-Id sent upstream (slotwise.proxy.http_hygiene)
    error: BaseException | None  # what made an engine_error fail-open (for its log line)
    _origin: str | None

    def __init__(
        self,
        scope: Scope,
        started: float,
        *,
        policy: CompiledPolicySet | None = None,
        gathered: Gathered = NO_SIGNALS,
    ) -> None:
        # written out rather than generated: a generated __init__ binds every field as a
        # keyword argument, twice the cost on a path that makes one per request
        self.scope = scope
        self.started = started
        self.method = ""
        self.path = ""
        self.body = b""
        self.policy = policy
        self.candidate = False
        self.lists = False
        self.providers = None
        self.early = False
        self.gathered = gathered
        self.issued = None
        self.prepared = None
        self.response = None
        self.raw = b""
        self.document = None
        self.codings = None
        self.now = 0.0
        self.records = None
        self.shared = _NOTHING
        self.claimed = None
        self.changed = False
        self.applied = False
        self.selected = None
        self.out = None
        self.reason = None
        self.cause = None
        self.request_id = b""
        self.error = None
        self._origin = None

    def record(self, record: DecisionRecord, subject: str | None) -> None:
        """Add a decision's record (and the user it is for)."""
        if self.records is None:
            self.records = [(record, subject)]
        else:
            self.records.append((record, subject))

    def fail(self, cause: str, records: Records | None = None) -> None:
        """Give up personalising: the upstream's answer goes out, ``records`` marked."""
        self.cause = cause
        self.records = records
        self.out = None
        self.error = sys.exc_info()[1]  # called in an except block: what went wrong, if any
        self.reason = None  # a fail-open is counted as one, not as a passthrough

    def contested(self, unit: int, locations: Iterable[Location]) -> bool:
        """Has an earlier personalisation claimed one of these locations of this unit?"""
        claimed = self.claimed
        return claimed is not None and any((unit, at) in claimed for at in locations)

    def claim(self, unit: int, locations: Iterable[Location]) -> None:
        """Take these locations of this unit: no later personalisation writes them."""
        shared = self.shared
        mine = [(unit, at) for at in locations if at in shared]
        if mine:
            if self.claimed is None:
                self.claimed = set()
            self.claimed.update(mine)

    def claim_always(self, unit: int, locations: Iterable[Location]) -> None:
        """Take these locations of this unit whether or not they are ``shared``: for a step
        that rarely decides (triggered campaigns), whose locations are left out of ``shared``
        so that the responses it does not decide on pay nothing for them."""
        if self.claimed is None:
            self.claimed = set()
        self.claimed.update((unit, at) for at in locations)

    def origin(
        self,
        public_url: str,
        allowed_hosts: frozenset[bytes] = frozenset(),
        forwarding: ForwardingPolicy | None = None,
    ) -> str:
        """The proxy's public origin for tracker URLs: configured, else the request's Host when
        it is one of ``allowed_hosts`` (with the scheme a trusted proxy reports, behind a
        TLS-terminating load balancer), else "" (relative tracker URLs)."""
        if self._origin is None:
            self._origin = public_url or _request_origin(self.scope, allowed_hosts, forwarding)
        return self._origin


def is_host(value: bytes) -> bool:
    """Whether ``value`` is RFC 3986's host[:port], the only Host a tracker origin may come from."""
    return _HOST.fullmatch(value) is not None


def _request_origin(
    scope: Scope, allowed_hosts: frozenset[bytes], forwarding: ForwardingPolicy | None
) -> str:
    host = header(scope["headers"], b"host")
    # the Host header is the client's to choose: only a configured one may name the origin of
    # the tracker URLs written into ad markup (else any client picks where trackers point)
    if not host or host.lower() not in allowed_hosts or not _HOST.fullmatch(host):
        return ""  # no trusted origin: relative URLs, which stay on whatever serves the page
    scheme = scope.get("scheme", "http")
    if forwarding is not None and forwarding.trusted_proxies:
        peer = scope.get("client")
        scheme = forwarding.scheme(peer[0] if peer else "", scope["headers"], scheme)
    return f"{scheme}://{host.decode('ascii')}"
