"""``bench proxy``'s browser-like visitors: consenting users with profiles and histories.

Requests as browsers send them carry the consent and user-id cookies, so the profile provider
reads the user's profile, cart, caps and events from the store on every request. The bench's
bare rows never reach that code. Here: ``USERS`` users, each with a profile (PUT
``/_sw/admin/profiles/{id}``) and six events (POST ``/_sw/events``: a session start, two page
views, two product views, an add to cart), written through the proxy's own endpoints, and a
wrk script that sends each request as the next of those users (the consent cookie, the user
id, a mobile browser's agent, language, referrer and country). The ``members`` campaign's rules
read what the profile provider returns (segments, visits, the history).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

USERS = 1000
ADMIN_TOKEN = "bench-admin-token-0123456789"
PLACEMENT = "member-top"
CAMPAIGN_ID = "cmp-members"
# the bench campaign's slots and its two contextual rules (lab/proxy_bench.py uses them too)
CREATIVE_SLOTS = """  slot headline at "$.creative.headline" {
    variant h1 "Spring deals are here"
    variant h2 "Save 20% this week"
    variant h3 "The spring edit"
  }
  slot image at "$.creative.image_url" {
    variant beach "https://cdn.example/beach.jpg"
    variant city  "https://cdn.example/city.jpg"
  }
  slot cta at "$.creative.cta" {
    variant shop "Shop now"
    variant see "See the deals"
  }
  rule "short copy on mobile" when device.type == "mobile" then prefer headline h2
  rule "German copy" when geo.country == "DE" then exclude headline h3
"""
MEMBERS_POLICY = (
    """policy "bench-members" version 1

segment loyal: "loyal" in user.segments or count of product_view within 7d >= 3

campaign members {
  applies when ad.campaign_id == "cmp-members"
"""
    + CREATIVE_SLOTS
    + """  rule "loyal customers see the deals" when loyal then prefer cta see
  rule "a cart left behind" when event add_to_cart within 2h then prefer image city
  rule "first visits" when user.is_new then prefer cta shop
  optimize clicks
}
"""
)
# the next user on every request (one wrk thread: one Lua state, one counter)
BROWSER_USERS = """wrk.headers["User-Agent"] = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like \
Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
wrk.headers["Accept-Language"] = "de-DE,de;q=0.9,en;q=0.8"
wrk.headers["Referer"] = "https://www.google.com/"
wrk.headers["CF-IPCountry"] = "DE"
local users = {users}
local n = 0
request = function()
  n = n + 1
  wrk.headers["Cookie"] = "sw_uid=u-" .. (n % users) .. "; sw_consent=personal"
  return wrk.format()
end
"""


def write_fixtures(d: Path) -> None:
    """The members campaign beside the bench policy, its creative, the wrk script."""
    (d / "policies" / "members.sw").write_text(MEMBERS_POLICY)
    creative = json.loads((d / "www" / "home-top").read_text())
    creative.update(placement=PLACEMENT, campaign_id=CAMPAIGN_ID)
    (d / "www" / PLACEMENT).write_text(json.dumps(creative))
    (d / "browser-users.lua").write_text(BROWSER_USERS.format(users=USERS))


def seed_requests(users: int = USERS) -> Iterator[tuple[str, str, Any, dict[str, str]]]:
    """(method, path, JSON body, headers) of the requests that store the users' data."""
    auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    events: list[dict[str, Any]] = []
    for n in range(users):
        user = f"u-{n}"
        profile = {
            "age": 20 + n % 50,
            "gender": "f" if n % 2 else "m",
            "visits": n % 7,
            "segments": ["loyal", "outdoor"] if n % 3 == 0 else ["bargain"],
        }
        yield "PUT", f"/_sw/admin/profiles/{user}", profile, auth
        product = {"product_id": f"sku-{n % 97}", "price": 19.9}
        kinds: list[tuple[str, dict[str, Any]]] = [
            ("session_start", {}),
            ("page_view", {"path": "/"}),
            ("product_view", product),
            ("page_view", {"path": "/c/shoes"}),
            ("product_view", product),
            ("add_to_cart", product),
        ]
        for i, (kind, properties) in enumerate(kinds):
            events.append(
                {"type": kind, "id": f"e-{n}-{i}", "user_id": user, "properties": properties}
            )
        if len(events) >= 96 or n == users - 1:
            yield "POST", "/_sw/events", {"events": events}, {"cookie": "sw_consent=personal"}
            events = []


def seed(proxy: str, users: int = USERS) -> None:
    """Each user's profile and six events, through the proxy's endpoints; raises on a refusal."""
    with httpx.Client(base_url=proxy, timeout=30.0) as client:
        for method, path, body, headers in seed_requests(users):
            answer = client.request(method, path, json=body, headers=headers)
            if answer.status_code >= 300:
                raise RuntimeError(f"seeding {path}: {answer.status_code} {answer.text}")
