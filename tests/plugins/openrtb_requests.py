"""OpenRTB 2.6 bid requests for tests: the specification's published examples, and the iPhone in
Germany of issue 15's acceptance built from the published mobile example."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

IAB = Path(__file__).resolve().parents[1] / "data" / "iab" / "openrtb-2.6"
PUBLISHED_REQUESTS = sorted(IAB.glob("openrtb2.6_0[1-5]_*.json"))
PUBLISHED_RESPONSES = sorted(IAB.glob("openrtb2.6_0[6-9]_*.json"))
TCF = json.loads((Path(__file__).parent / "data" / "tcf_v2.json").read_text())
CONSENTING = TCF["consenting"]  # a real TC string: vendor 284 consents to purposes 1, 3 and 4
VENDOR = CONSENTING["vendor"]
# a day after the consenting string was last updated: it is fresh
NOW = CONSENTING["last_updated"] + 86_400.0
# what the exchange's own HTTP client says of itself
EXCHANGE_AGENT = "Go-http-client/1.1"


def published(name: str) -> dict[str, Any]:
    """A published example by the start of its file name (``"openrtb2.6_03"``)."""
    path = next(p for p in IAB.iterdir() if p.name.startswith(name))
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def iphone_in_germany(**regs: Any) -> dict[str, Any]:
    """Example 6.2.3 (an iPhone app request) with a device in Berlin, Germany, and GDPR on.

    ``regs`` replaces the regs object (default ``{"gdpr": 1}``); the user's ``consent`` is
    the consenting TC string unless ``consent=None`` is given among ``regs``.
    """
    request = copy.deepcopy(published("openrtb2.6_03"))
    request["device"]["geo"] = {
        "country": "DEU",
        "region": "DE-BE",
        "city": "Berlin",
        "lat": 52.52,
        "lon": 13.405,
        "type": 2,
    }
    consent = regs.pop("consent", CONSENTING["tc"])
    request["regs"] = regs or {"gdpr": 1}
    if consent is not None:
        request["user"]["consent"] = consent
    return request
