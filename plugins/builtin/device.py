"""The ``device`` provider: device type, operating system and browser.

User-Agent Client Hints win where the browser sends them (``Sec-CH-UA-Mobile``,
``Sec-CH-UA-Platform``, ``Sec-CH-UA``): they are what Chromium-based browsers still report
truthfully after freezing their User-Agent string. Otherwise the User-Agent is parsed with
``ua-parser`` (the maintained uap-core regexes from ``ua-parser-builtins``); the whole
classification of an agent and its hints is kept in an LRU cache (4,096 entries), so a repeated
agent costs a dictionary lookup. Agents longer than 512 characters and hints longer than 256
are cut before parsing, which bounds what one request can cost. Parsing an agent not seen
before costs about 0.5-1 ms, several personalised requests' worth: a client sending a new agent
with every request would spend the worker on it. So parses of new agents get at most a tenth
of the worker's time (a leaky bucket of parse time); past it, a new agent is classified from
the hints and cheap substring checks (``device.type`` only; not cached, so it is parsed once
the budget allows) and counted as the provider's fallback ``parse_budget``. Values are
normalised to small closed sets so policies can be checked: ``device.os == "ios"``,
``device.browser == "chrome"``.

For an OpenRTB bid request, its ``device`` describes the user's device (the HTTP request is the
exchange's): ``device.ua`` and the structured user agent ``device.sua`` are classified as the
User-Agent and client hints are, the declared ``device.os`` and ``device.devicetype`` win over
what the agent suggests (a crawler stays a bot), and the HTTP headers fill only the signals the
bid request leaves unknown.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import ua_parser

from slotwise.plugins.bid_request import Device
from slotwise.plugins.provider import Provider, signal
from slotwise.plugins.request import RequestInfo, bid_request_of, headers_of
from slotwise.types import SignalType, SignalValue

DEVICE_TYPES = ("mobile", "tablet", "desktop", "ctv", "bot")
OPERATING_SYSTEMS = ("android", "ios", "ipados", "windows", "macos", "linux", "chromeos", "other")
BROWSERS = ("chrome", "safari", "firefox", "edge", "opera", "samsung", "other")

_OS_FAMILIES = {
    "android": "android",
    "ios": "ios",
    "ipados": "ipados",
    "windows": "windows",
    "mac os x": "macos",
    "macos": "macos",
    "os x": "macos",
    "linux": "linux",
    "ubuntu": "linux",
    "fedora": "linux",
    "debian": "linux",
    "chrome os": "chromeos",
    "chromeos": "chromeos",
    "chromium os": "chromeos",
}
_BROWSER_FAMILIES = {
    "chrome": "chrome",
    "chrome mobile": "chrome",
    "chrome mobile ios": "chrome",
    "chrome mobile webview": "chrome",
    "chromium": "chrome",
    "google chrome": "chrome",
    "safari": "safari",
    "mobile safari": "safari",
    "mobile safari ui/wkwebview": "safari",
    "firefox": "firefox",
    "firefox mobile": "firefox",
    "firefox ios": "firefox",
    "edge": "edge",
    "edge mobile": "edge",
    "microsoft edge": "edge",
    "opera": "opera",
    "opera mobile": "opera",
    "samsung internet": "samsung",
}
_TABLETS = re.compile(r"ipad|tablet|kindle|silk|playbook|nexus (7|9|10)|sm-t\d")  # lower case
# a bot's agent says "bot" as a word end, or one of these (looked for in the lower-cased agent)
_BOT_WORDS: Final[tuple[str, ...]] = ("crawler", "spider", "slurp", "headlesschrome", "lighthouse")
_BOT_END: Final = re.compile(r"bot\b")
_BRAND = re.compile(r'"([^"]+)"\s*;\s*v="[^"]*"')
# OpenRTB's device types (AdCOM "Device Types"): 1 "Mobile/Tablet" is left to the agent.
_ORTB_DEVICE_TYPES = {2: "desktop", 3: "ctv", 4: "mobile", 5: "tablet", 7: "ctv"}
_ORTB_MOBILE_OR_TABLET = 1


class DeviceProvider(Provider[Any]):
    """Device signals from client hints and the User-Agent; no I/O, no identifiers."""

    name = "device"
    inline = True
    reuses_results = True  # an agent's parsed answer is kept (read-only): validated once
    deadline = 0.02
    signals = (
        signal(
            "device.type",
            SignalType.STRING,
            "Form factor: mobile, tablet, desktop, ctv (connected TV, set-top box), or bot.",
            values=DEVICE_TYPES,
        ),
        signal(
            "device.os", SignalType.STRING, "Operating system family.", values=OPERATING_SYSTEMS
        ),
        signal("device.browser", SignalType.STRING, "Browser family.", values=BROWSERS),
    )

    async def start(self) -> None:
        # The first parse compiles the regex set (~0.1 s); pay it at start-up, not per request.
        ua_parser.parse("Mozilla/5.0")

    async def fetch(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        return self.fetch_now(request)

    def fetch_now(self, request: RequestInfo) -> Mapping[str, SignalValue]:
        """``fetch`` without a coroutine: gather calls it directly (it never waits)."""
        headers = headers_of(request)
        found = _from_agent(
            headers.get("user-agent") or "",
            headers.get("sec-ch-ua-mobile"),
            headers.get("sec-ch-ua-platform"),
            headers.get("sec-ch-ua"),
        )
        if found is _COARSE.last:
            self.metrics.fallback("parse_budget")
        bid = bid_request_of(request)
        if bid is None or bid.device is None:
            return found
        declared = from_device(bid.device)
        return {**found, **declared} if declared else found


def from_device(device: Device) -> dict[str, SignalValue]:
    """Device signals from an OpenRTB bid request's ``device`` (empty when it says nothing)."""
    sua = device.sua
    mobile = platform = brands = None
    if sua is not None:
        mobile = {1: "?1", 0: "?0"}.get(sua.mobile) if sua.mobile is not None else None
        if sua.platform is not None and sua.platform.brand:
            platform = f'"{sua.platform.brand}"'
        # as Sec-CH-UA says them: '"Chromium";v="124", "Google Chrome";v="124"'
        brands = ", ".join(
            f'"{b.brand}";v="{b.version[0] if b.version else ""}"'
            for b in sua.browsers[:8]
            if b.brand
        )
    out = dict(_from_agent(device.ua or "", mobile, platform, brands or None))
    declared_os = _OS_FAMILIES.get((device.os or "").strip().lower()[:_MAX_HINT])
    if declared_os is not None:
        out["device.os"] = declared_os
    kind = _ORTB_DEVICE_TYPES.get(device.devicetype) if device.devicetype is not None else None
    if kind is not None and out.get("device.type") != "bot":
        out["device.type"] = kind
    elif device.devicetype == _ORTB_MOBILE_OR_TABLET and "device.type" not in out:
        out["device.type"] = "mobile"
    return out


def _from_agent(
    user_agent: str, mobile: str | None, platform: str | None, brands: str | None
) -> Mapping[str, SignalValue]:
    # the parse cost grows with the length (15 KB of agent took 23 ms): what a real agent
    # says fits well inside the caps, so a longer one is cut before parsing and caching
    mobile, platform, brands = _capped(mobile), _capped(platform), _capped(brands)
    found = _classify_cached(user_agent[:MAX_AGENT], mobile, platform, brands)
    # past the cap only the (linear, cheap) bot words are looked for: a crawler that pads
    # its agent is still a bot
    if len(user_agent) > MAX_AGENT and _bot_in(user_agent[MAX_AGENT - _BOT_WORD :]):
        return {**found, "device.type": "bot"}
    return found


def _bot_in(text: str) -> bool:
    """Whether ``text`` names a bot. Substring searches run at C speed, where one
    case-insensitive alternation tried six words at every position (3 ms on 15 KB)."""
    text = text.lower()
    return any(word in text for word in _BOT_WORDS) or _BOT_END.search(text) is not None


# Real agents are 100-400 characters (in-app browsers append their tokens); parsing 512
# characters of anything takes about as long as a real agent, 1,024 four times that.
MAX_AGENT: Final = 512
_MAX_HINT: Final = 256
_BOT_WORD: Final = 16  # the longest bot word, so one cut at the cap is still found


def _capped(hint: str | None) -> str | None:
    return hint[:_MAX_HINT] if hint is not None else None


# A site sees a few thousand distinct agents (and hint sets) again and again; ua-parser's own
# cache still leaves the tablet and bot regexes and the normalising to run per request. The
# cache is bounded (entries, and each key by the caps above).
_PARSE_SHARE = 0.1  # of the wall clock, at most, spent parsing agents not seen before
_PARSE_BURST = 0.05  # seconds of parsing the bucket holds (a burst of new agents at start)


class _OverBudget(Exception):
    """Raised inside the cache on a miss past the budget: lru_cache keeps no exceptions."""


class _ParseBudget:
    """A leaky bucket of parse time: ``spent`` drains at ``_PARSE_SHARE`` seconds a second."""

    __slots__ = ("spent", "since", "last")

    def __init__(self) -> None:
        self.spent = 0.0
        self.since = 0.0
        self.last: dict[str, SignalValue] | None = None  # the last coarse answer (counted)

    def allows(self, now: float) -> bool:
        self.spent = max(0.0, self.spent - (now - self.since) * _PARSE_SHARE)
        self.since = now
        return self.spent < _PARSE_BURST


_COARSE: Final = _ParseBudget()


def _classify_cached(
    user_agent: str, mobile: str | None, platform: str | None, brands: str | None
) -> Mapping[str, SignalValue]:
    try:
        return _parsed(user_agent, mobile, platform, brands)  # a hit costs a C lookup
    except _OverBudget:
        coarse = classify(user_agent, mobile_hint=mobile, platform_hint=platform,
                          brands_hint=brands, parse=False)  # fmt: skip
        _COARSE.last = coarse
        return coarse


@functools.lru_cache(maxsize=4096)
def _parsed(
    user_agent: str, mobile: str | None, platform: str | None, brands: str | None
) -> Mapping[str, SignalValue]:
    started = time.perf_counter()
    if not _COARSE.allows(started):
        raise _OverBudget
    found = classify(user_agent, mobile_hint=mobile, platform_hint=platform, brands_hint=brands)
    _COARSE.spent += time.perf_counter() - started
    # read-only: the provider returns this very object for every request with the agent
    return MappingProxyType(found)


def classify(
    user_agent: str,
    *,
    mobile_hint: str | None = None,
    platform_hint: str | None = None,
    brands_hint: str | None = None,
    parse: bool = True,
) -> dict[str, SignalValue]:
    """Device type, OS and browser from a User-Agent string and optional client hints
    (without ``parse``, from the hints and substring checks only: no ua-parser)."""
    out: dict[str, SignalValue] = {}
    if not user_agent and mobile_hint is None and platform_hint is None:
        return out
    parsed = ua_parser.parse(user_agent) if user_agent and parse else None
    os_name = _os_from_hint(platform_hint)
    if os_name is None and parsed is not None and parsed.os is not None:
        os_name = _OS_FAMILIES.get(parsed.os.family.lower(), "other")
    if os_name is not None:
        out["device.os"] = os_name
    browser = _browser_from_brands(brands_hint)
    if browser is None and parsed is not None and parsed.user_agent is not None:
        browser = _BROWSER_FAMILIES.get(parsed.user_agent.family.lower(), "other")
    if browser is not None:
        out["device.browser"] = browser

    hint = mobile_hint.strip() if mobile_hint is not None else None
    device_family = parsed.device.family if parsed is not None and parsed.device else ""
    lowered = user_agent.lower()  # case-insensitive regexes cost 5x on long agents
    if device_family == "Spider" or _bot_in(lowered):
        out["device.type"] = "bot"
    elif hint == "?1":
        out["device.type"] = "mobile"
    elif device_family == "iPad" or _TABLETS.search(lowered):
        out["device.type"] = "tablet"
    elif hint == "?0":  # not a phone: a tablet when the system is a mobile one
        out["device.type"] = "tablet" if os_name in ("android", "ios", "ipados") else "desktop"
    elif os_name == "android" and "Mobile" not in user_agent:
        out["device.type"] = "tablet"  # Android phones say "Mobile"; tablets do not
    elif os_name in ("android", "ios") or "Mobi" in user_agent:
        out["device.type"] = "mobile"
    elif user_agent or hint is not None:
        out["device.type"] = "desktop"
    return out


def _os_from_hint(platform: str | None) -> str | None:
    if not platform:
        return None
    value = platform.strip().strip('"').lower()
    if value in ("", "unknown"):
        return None
    return _OS_FAMILIES.get(value, "other")


def _browser_from_brands(brands: str | None) -> str | None:
    """The real brand in ``Sec-CH-UA`` (skipping GREASE entries like ``"Not A(Brand"``)."""
    if not brands:
        return None
    names = [b.lower() for b in _BRAND.findall(brands)]
    # "Chromium" is listed beside the vendor brand (Google Chrome, Microsoft Edge, Opera):
    # the vendor decides, Chromium alone means a Chromium build.
    for name in names:
        if name != "chromium" and name in _BROWSER_FAMILIES:
            return _BROWSER_FAMILIES[name]
    return "chrome" if "chromium" in names else None
