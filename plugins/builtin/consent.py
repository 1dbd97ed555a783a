"""The ``consent`` provider: one consent level the rest of slotwise obeys.

``consent.level`` is ``personal`` (profile, behaviour and identifiers may be used) or
``contextual`` (only what the request itself says). It is decided from, in order:

1. the Global Privacy Control header ``Sec-GPC: 1``: contextual, whatever else says;
2. for an OpenRTB bid request (the POST body an exchange sends) that carries any privacy
   signal, that signal alone (the HTTP request is the exchange's, not the user's):
   ``regs.coppa = 1``: contextual; the IAB GPP string ``regs.gpp`` with the sections
   ``regs.gpp_sid`` puts in force: its TCF EU v2 section as a TC string below, its US
   National section (an opt-out of sale, sharing or targeted advertising, a known child without
   consent, GPC), its US Privacy section, and any other section in force (not read here):
   contextual; the TC string ``user.consent`` as below, ``regs.gdpr = 1`` without a TC
   string: contextual; ``regs.us_privacy`` opting out of sale: contextual. Personal when a TC
   string granted it, else ``default_level``;
3. the site's own consent cookie (``sw_consent`` by default): a denial is final;
4. the IAB TCF v2 TC string (``euconsent-v2`` cookie or ``gdpr_consent`` query parameter):
   malformed, expired (older than ``max_age_days``), without consent for the configured
   ``vendor_id``, without consent to every ``required_purposes``, or flatly restricted by the
   publisher for our vendor: contextual. ``gdpr=1`` without a TC string: contextual;
5. personal when the TC string or the site cookie granted it, else ``default_level``.

A malformed consent string (TC, GPP or US Privacy) and a GPP section in force that is not
read here are contextual and counted in ``fallbacks_total`` by the reason.
``consent.reason`` says which rule decided, for ``slotwise explain`` and the decision log.
The gatekeeper runs first in :func:`~slotwise.plugins.gather.gather`; when it fails or is late,
the request is treated as contextual (fail closed).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from slotwise.plugins import bid_request
from slotwise.plugins.builtin import gpp
from slotwise.plugins.builtin.configs import ConsentConfig
from slotwise.plugins.builtin.tcf import MAX_CORE_LENGTH, TCFError, TCString, decode
from slotwise.plugins.provider import Provider, signal
from slotwise.plugins.request import RequestInfo, bid_request_of
from slotwise.types import SignalType, SignalValue

LEVELS = ("personal", "contextual")
REASONS = (
    "granted",
    "gpc",
    "site_denied",
    "site_unreadable",
    "tcf_malformed",
    "tcf_expired",
    "tcf_vendor_denied",
    "tcf_purpose_denied",
    "tcf_restricted",
    "tcf_no_vendor_configured",
    "tcf_missing",
    "coppa",
    "gpp_malformed",
    "gpp_unsupported",
    "usnat_opted_out",
    "usnat_child",
    "usp_malformed",
    "usp_opted_out",
    "default",
)
# Reasons that are a fallback for an unusable consent string: counted as such.
FALLBACKS: Final = frozenset({"tcf_malformed", "gpp_malformed", "gpp_unsupported", "usp_malformed"})
_DAY = 86_400.0
# Clocks disagree a little; a TC string "from the future" beyond this is not trusted.
_CLOCK_SKEW = 300.0


class ConsentProvider(Provider[ConsentConfig]):
    """Decides personal vs contextual; contextual itself, it reads only consent records."""

    name = "consent"
    inline = True
    reuses_results = True  # one read-only answer per (level, reason): validated once
    config_type = ConsentConfig
    deadline = 0.01
    signals = (
        signal(
            "consent.level",
            SignalType.STRING,
            "personal: profile and behaviour may be used; contextual: only the request.",
            values=LEVELS,
        ),
        signal(
            "consent.reason",
            SignalType.STRING,
            "Which rule decided the level (gpc, site_denied, tcf_expired, granted...).",
            values=REASONS,
        ),
    )

    def __init__(self, config: ConsentConfig) -> None:
        super().__init__(config)
        self._required = frozenset(config.required_purposes)
        self._grants = frozenset(v.lower() for v in config.site_grants)
        self._denies = frozenset(v.lower() for v in config.site_denies)
        # The same user sends the same TC string on every request: decode it once. Keyed by
        # the core segment (at most 8 KiB), so the cache stays under ~10 MB whatever is sent.
        self._decode = functools.lru_cache(maxsize=1024)(_decode_or_error)
        # GPP strings and their US National sections likewise (at most 8 KiB each)
        self._decode_gpp = functools.lru_cache(maxsize=512)(_gpp_or_error)
        self._decode_usnat = functools.lru_cache(maxsize=512)(_usnat_or_error)
        self._answers: dict[tuple[str, str], Mapping[str, SignalValue]] = {}

    async def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        return self.fetch_now(request)

    def fetch_now(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        """``fetch`` without a coroutine: gather calls it directly (it never waits)."""
        level, reason = self.decide(request)
        if reason in FALLBACKS:
            self.metrics.fallback(reason)
        answer = self._answers.get((level, reason))
        if answer is None:  # a few dozen pairs at most: the levels by the reasons
            answer = MappingProxyType({"consent.level": level, "consent.reason": reason})
            self._answers[level, reason] = answer
        return answer

    def decide(self, request: RequestInfo) -> tuple[str, str]:
        """The consent level and the reason for it."""
        config = self.config
        if config.honor_gpc and (request.headers.get("sec-gpc") or "").strip() == "1":
            return "contextual", "gpc"
        bid = bid_request_of(request)
        if bid is not None and _speaks(bid):
            return self._from_bid_request(bid, request.received_at)
        granted = False
        if config.site_cookie is not None and config.site_cookie in request.cookies:
            value = request.cookies[config.site_cookie].strip().lower()
            if value in self._denies:
                return "contextual", "site_denied"
            if value not in self._grants:
                return "contextual", "site_unreadable"
            granted = True
        tc = request.cookies.get(config.tcf_cookie) or request.query.get(config.tcf_param)
        if tc:
            reason = self._tcf_reason(tc, request.received_at)
            if reason != "granted":
                return "contextual", reason
            granted = True
        elif request.query.get(config.gdpr_param) == "1":
            return "contextual", "tcf_missing"
        if granted:
            return "personal", "granted"
        return config.default_level, "default"

    def _from_bid_request(self, bid: bid_request.BidRequest, now: float) -> tuple[str, str]:
        """The level an OpenRTB bid request's privacy signals decide (see the module's 2.)."""
        if bid.coppa:
            return "contextual", "coppa"
        granted = False
        text = bid.gpp
        if text:
            reason = self._gpp_reason(text, bid.gpp_sid, now)
            if reason == "granted":
                granted = True
            elif reason is not None:
                return "contextual", reason
        tc = bid.tc_string
        if tc:
            reason = self._tcf_reason(tc, now)
            if reason != "granted":
                return "contextual", reason
            granted = True
        elif bid.gdpr == 1 and not granted:
            return "contextual", "tcf_missing"
        usp = bid.us_privacy
        reason = _usp_reason(usp, "usp_malformed") if usp else None
        if reason is not None:
            return "contextual", reason
        if granted:
            return "personal", "granted"
        return self.config.default_level, "default"

    def _gpp_reason(self, text: str, in_force: tuple[int, ...] | None, now: float) -> str | None:
        """What the sections of a GPP string in force say: a denial reason, ``granted`` (its
        TC string granted consent) or None (nothing either way). ``in_force`` defaults to every
        section of the string."""
        decoded = self._decode_gpp(text.strip()[: gpp.MAX_LENGTH + 1])
        if isinstance(decoded, str):
            return "gpp_malformed"
        verdict: str | None = None
        for section_id in decoded.section_ids if in_force is None else in_force:
            section = decoded.sections.get(section_id)
            # a section said to be in force but missing from the string is malformed
            reason = "gpp_malformed" if section is None else self._section(section_id, section, now)
            if reason == "granted":
                verdict = reason
            elif reason is not None:
                return reason
        return verdict

    def _section(self, section_id: int, text: str, now: float) -> str | None:
        """What one GPP section in force says: a denial reason, ``granted``, or None."""
        if section_id == gpp.TCF_EU_V2:
            return self._tcf_reason(text, now)
        if section_id == gpp.US_PRIVACY:
            return _usp_reason(text, "gpp_malformed")
        if section_id != gpp.US_NATIONAL:  # Canadian TCF, US states: not read, not obeyed
            return "gpp_unsupported"
        usnat = self._decode_usnat(text)
        if isinstance(usnat, str):
            return "gpp_malformed"
        if usnat.opted_out:
            return "usnat_opted_out"
        if usnat.known_child_without_consent:
            return "usnat_child"
        if usnat.gpc and self.config.honor_gpc:
            return "gpc"
        return None

    def _tcf_reason(self, tc_string: str, now: float) -> str:
        decoded = self._decode(tc_string.strip().split(".", 1)[0][: MAX_CORE_LENGTH + 1])
        if isinstance(decoded, str):
            return "tcf_malformed"
        age = now - decoded.last_updated
        if age > self.config.max_age_days * _DAY or age < -_CLOCK_SKEW:
            return "tcf_expired"
        vendor = self.config.vendor_id
        if vendor is None:
            return "tcf_no_vendor_configured"
        if vendor not in decoded.vendor_consents:
            return "tcf_vendor_denied"
        if not self._required <= decoded.purpose_consents:
            return "tcf_purpose_denied"
        if any(decoded.restricted(vendor, purpose, 0) for purpose in self._required):
            return "tcf_restricted"
        return "granted"


def _speaks(bid: bid_request.BidRequest) -> bool:
    """Whether a bid request carries any privacy signal (else the HTTP request decides)."""
    return bool(
        bid.coppa
        or bid.gdpr is not None
        or bid.tc_string
        or bid.gpp
        or bid.gpp_sid is not None
        or bid.us_privacy
    )


def _usp_reason(text: str, malformed: str) -> str | None:
    """``usp_opted_out`` for a US Privacy string opting out of sale, ``malformed`` for one that
    does not decode, else None."""
    try:
        return "usp_opted_out" if gpp.decode_us_privacy(text).opted_out else None
    except gpp.GPPError:
        return malformed


def _decode_or_error(tc_string: str) -> TCString | str:
    try:
        return decode(tc_string)
    except TCFError as exc:
        return str(exc)


def _gpp_or_error(text: str) -> gpp.GPPString | str:
    try:
        return gpp.decode(text)
    except gpp.GPPError as exc:
        return str(exc)


def _usnat_or_error(text: str) -> gpp.UsNational | str:
    try:
        return gpp.decode_us_national(text)
    except gpp.GPPError as exc:
        return str(exc)
