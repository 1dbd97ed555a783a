"""Record the request path's answers to the example traffic, for the differential test.

tests/proxy/test_differential.py replays the same requests through the request path of the
tree it runs in and compares bodies and decision records with what this script recorded from
an older tree (ids, signatures and times aside; a recorded holdout answer is expected with its
decision's trackers added, issue 15's one intended change). Record once, against a worktree of
the commit whose behaviour is the reference, from a directory outside the repository (else
Python imports the working tree first):

    git worktree add /tmp/base <commit>
    cd /tmp && PYTHONPATH=/tmp/base /path/to/repo/.venv/bin/python \\
        /path/to/repo/scripts/differential_record.py /path/to/repo/tests/data/differential.jsonl.gz

The traffic (2,000 requests, built here with a fixed seed; each request carries the upstream's
answer, so the replay needs no ad server):

- phase ``demo`` (examples/adserver/policies/demo.sw): the demo's audience segments (its users,
  cookies, consent, profiles) asking the example ad server for JSON creatives (personalised
  and not), OpenRTB bids (one native bid, or a native and a video bid in one response) and VAST
  pre-rolls;
- phase ``shop`` (policies/): storefront pages (home with hero, category, product, cart, a
  gzip-encoded home page), the published IAB examples (every Native 1.2 response in a bid, the
  OpenRTB 2.6 responses, the 34 VAST samples; ad ids set to the policy's campaign where the ad
  has all its slots, so those are personalised), a response with two native bids, and answers
  that pass through (HEAD, an image, a 404, a broken body).

The traffic stays inside what the old and new request paths both do, since issue 14 changed
two behaviours on purpose: no campaign is missing a slot (the script refuses to write a
recording where one was) and no response has two campaigns that apply (the new path would
decide both, and the test would find a record the old path never wrote).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gzip
import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SEED = 14
REQUESTS = {"demo": 1600, "shop": 400}
IAB = REPO / "tests" / "data" / "iab"
_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
_DESKTOP = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
# the demo's audience segments (slotwise.proxy.cli.demo.SEGMENTS): agent, country, consent,
# age, CRM segments
SEGMENTS = (
    ("young mobile shoppers, Germany", _IPHONE, "DE", True, 21, ()),
    ("young mobile shoppers, France", _IPHONE, "FR", True, 22, ()),
    ("loyal desktop customers, US", _DESKTOP, "US", True, 45, ("loyal",)),
    ("visitors without consent, UK", _DESKTOP, "GB", False, None, ()),
)
# the native request's assets (as in proxy/cli/demo.py: IAB Native 1.2 example 6.1 plus a CTA)
_NATIVE_ASSETS = [
    {"id": 123, "required": 1, "title": {"len": 140}},
    {"id": 128, "required": 0, "img": {"wmin": 836, "hmin": 627, "type": 3}},
    {"id": 124, "required": 1, "img": {"wmin": 50, "hmin": 50, "type": 1}},
    {"id": 126, "required": 1, "data": {"type": 1, "len": 25}},
    {"id": 127, "required": 1, "data": {"type": 2, "len": 140}},
    {"id": 129, "required": 0, "data": {"type": 12, "len": 15}},
]
JSON_HEADERS = [["Content-Type", "application/json"], ["Cache-Control", "no-store"]]
XML_HEADERS = [["Content-Type", "application/xml; charset=utf-8"], ["Cache-Control", "no-store"]]


@functools.cache
def load_driver() -> Any:
    """tests/proxy/differential.py by its path (PYTHONPATH's ``tests`` is the other tree's)."""
    path = REPO / "tests" / "proxy" / "differential.py"
    spec = importlib.util.spec_from_file_location("differential_driver", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _request(
    method: str,
    path: str,
    headers: list[list[str]],
    body: bytes,
    status: int,
    answer_headers: list[list[str]],
    answer: bytes,
) -> dict[str, Any]:
    driver = load_driver()
    return {
        "method": method,
        "path": path,
        "headers": headers,
        "body": driver.encode_body(body),
        "upstream": {
            "status": status,
            "headers": answer_headers,
            "body": driver.encode_body(answer),
        },
    }


def _user_headers(agent: str, country: str, user: str | None, consent: bool) -> list[list[str]]:
    headers = [["user-agent", agent], ["cf-ipcountry", country]]
    if user is not None:
        level = "personal" if consent else "denied"
        headers.append(["cookie", f"sw_uid={user}; sw_consent={level}"])
    return headers


# -- phase demo: the example ad server --------------------------------------------------------


def demo_phase() -> dict[str, Any]:
    sys.path.insert(0, str(REPO))  # examples/ of this checkout
    from examples.adserver.app import bid_response
    from examples.adserver.creatives import json_ad, vast

    users = [(segment, f"demo-{i}-{n}") for i, segment in enumerate(SEGMENTS) for n in range(10)]
    profiles = {
        user: {"age": age, "segments": list(crm), "visits": 3}
        for (_, _, _, consent, age, crm), user in users
        if consent
    }
    requests: list[dict[str, Any]] = []
    serial = 0
    for round_ in range(REQUESTS["demo"] // (len(users) * 4)):
        for (_, agent, country, consent, _, _), user in users:
            headers = _user_headers(agent, country, user, consent)
            for kind in ("json", "bid", "vast", "other json"):
                serial += 1
                request_id = f"r{serial}"
                if kind in ("json", "other json"):
                    placement = (
                        "home-top" if kind == "json" else ("article-side", "footer")[round_ % 2]
                    )
                    ad = json_ad(placement, request_id)
                    requests.append(
                        _request(
                            "GET", f"/ads/{placement}", headers, b"", 200, JSON_HEADERS,
                            json.dumps(ad).encode(),
                        )
                    )  # fmt: skip
                elif kind == "bid":
                    bid = _bid_request(user, video=round_ % 2 == 0)
                    answer = bid_response(bid, request_id)
                    requests.append(
                        _request(
                            "POST", "/openrtb/bid",
                            [*headers, ["content-type", "application/json"]],
                            json.dumps(bid).encode(), 200, JSON_HEADERS,
                            json.dumps(answer).encode(),
                        )
                    )  # fmt: skip
                else:
                    requests.append(
                        _request(
                            "GET", "/vast/preroll", headers, b"", 200, XML_HEADERS,
                            vast("cmp-video", request_id).encode(),
                        )
                    )  # fmt: skip
    policies = {"demo.sw": (REPO / "examples/adserver/policies/demo.sw").read_text("utf-8")}
    return {"name": "demo", "seed": SEED, "policies": policies, "profiles": profiles,
            "requests": requests}  # fmt: skip


def _bid_request(user: str, *, video: bool) -> dict[str, Any]:
    native = {"ver": "1.2", "assets": _NATIVE_ASSETS}
    imps: list[dict[str, Any]] = [
        {"id": "1", "tagid": "feed-native", "native": {"request": json.dumps(native), "ver": "1.2"}}
    ]
    if video:
        imps.append(
            {"id": "2", "tagid": "preroll", "video": {"mimes": ["video/mp4"], "w": 640, "h": 360}}
        )
    return {
        "id": f"bid-{user}",
        "imp": imps,
        "site": {"page": "https://publisher.example/article"},
        "user": {"id": user},
    }


# -- phase shop: storefront pages, the IAB examples, pass-throughs -----------------------------


def shop_phase() -> dict[str, Any]:
    policy_dir = REPO / "policies"
    policies = {p.name: p.read_text("utf-8") for p in sorted(policy_dir.glob("*.sw"))}
    users = [
        ("outdoor", _IPHONE, "DE", "shop-1", True, {"segments": ["outdoor"], "visits": 5}),
        ("loyal", _DESKTOP, "FR", "shop-2", True, {"segments": ["loyal"], "visits": 12}),
        ("new", _IPHONE, "US", "shop-3", True, {"segments": [], "visits": 1}),
        ("hiking", _DESKTOP, "NL", "shop-4", True, {"segments": ["hiking", "loyal"], "visits": 3}),
        ("denied", _DESKTOP, "GB", "shop-5", False, None),
        ("denied mobile", _IPHONE, "IT", "shop-6", False, None),
        ("anonymous", _DESKTOP, "ES", None, False, None),
        ("anonymous mobile", _IPHONE, "DE", None, False, None),
    ]
    profiles = {user: profile for _, _, _, user, _, profile in users if profile is not None}
    documents = _shop_documents()
    requests = []
    for i in range(REQUESTS["shop"]):
        method, path, body, status, headers, answer = documents[i % len(documents)]
        _, agent, country, user, consent, _ = users[(i // len(documents) + i) % len(users)]
        request_headers = _user_headers(agent, country, user, consent)
        if body:
            request_headers.append(["content-type", "application/json"])
        requests.append(_request(method, path, request_headers, body, status, headers, answer))
    return {"name": "shop", "seed": SEED + 1, "policies": policies, "profiles": profiles,
            "requests": requests}  # fmt: skip


Document = tuple[str, str, bytes, int, list[list[str]], bytes]


def _shop_documents() -> list[Document]:
    docs: list[Document] = []
    home = {
        "hero": {"image": "https://cdn.example/hero/default.jpg", "title": "Welcome back"},
        "sections": {"for_you": {"items": [{"sku": f"sku-{i}"} for i in range(6)]}},
        "banner": {"text": "Free returns"},
    }
    category = {"products": [{"sku": f"sku-{i}", "brand": "trail"} for i in range(8)],
                "banner": {"text": "Boots for every trail"}}  # fmt: skip
    product = {"product": {"sku": "sku-1", "similar": [], "promo": "none"}}
    cart = {"cart": {"items": ["sku-1"]}, "cross_sell": [{"sku": "sku-9"}]}
    for path, document in (("/", home), ("/c/boots", category), ("/p/sku-1", product),
                           ("/cart", cart)):  # fmt: skip
        docs.append(("GET", path, b"", 200, JSON_HEADERS, json.dumps(document).encode()))
    gzipped = [*JSON_HEADERS, ["Content-Encoding", "gzip"]]
    docs.append(
        ("GET", "/?v=gz", b"", 200, gzipped, gzip.compress(json.dumps(home).encode(), mtime=0))
    )
    docs += _native_documents() + _openrtb_documents() + _vast_documents()
    docs += [
        ("HEAD", "/", b"", 200, JSON_HEADERS, b""),
        ("GET", "/logo.png", b"", 200, [["Content-Type", "image/png"]], b"\x89PNG\r\n\x1a\n...."),
        ("GET", "/gone", b"", 404, JSON_HEADERS, b'{"error": "not found"}'),
        ("POST", "/openrtb/bid", b'{"id": "x"}', 200, JSON_HEADERS, b'{"seatbid": ['),
    ]
    return docs


def _native_documents() -> list[Document]:
    """Each Native 1.2 response in a bid (as tests/proxy/adapters/test_iab_examples.py does)."""
    docs: list[Document] = []
    for n, path in enumerate(sorted((IAB / "native-1.2").glob("*response*.json"))):
        request_path = path.with_name(path.name.replace("response", "request"))
        native_request = json.loads(request_path.read_text()) if request_path.exists() else {}
        bid_request = {
            "id": f"native-{n}",
            "imp": [{"id": "1", "tagid": f"native-{n}",
                     "native": {"request": json.dumps(native_request), "ver": "1.2"}}],
        }  # fmt: skip
        bid = {"id": f"b{n}", "impid": "1", "price": 1.0, "cid": "cmp-other",
               "adm": path.read_text()}  # fmt: skip
        body = json.dumps(bid_request).encode()
        bid["cid"] = _native_campaign(bid, body)
        answer = {"id": f"native-{n}", "seatbid": [{"bid": [bid]}]}
        docs.append(("POST", "/openrtb/bid", body, 200, JSON_HEADERS, json.dumps(answer).encode()))
    # two bids of the example ad server's native ad in one response: one decision per bid
    sys.path.insert(0, str(REPO))  # examples/ of this checkout
    from examples.adserver.creatives import native_markup

    native = json.dumps({"ver": "1.2", "assets": _NATIVE_ASSETS})
    pair_request = {
        "id": "pair",
        "imp": [{"id": imp, "tagid": f"feed-{imp}", "native": {"request": native, "ver": "1.2"}}
                for imp in ("1", "2")],
    }  # fmt: skip
    pair = [
        {"id": f"p{imp}", "impid": imp, "price": 2.0, "cid": "cmp-native", "crid": "cr-n",
         "adm": json.dumps(native_markup(f"pair-{imp}"))}
        for imp in ("1", "2")
    ]  # fmt: skip
    answer = {"id": "pair", "seatbid": [{"seat": "s", "bid": pair}]}
    docs.append(
        ("POST", "/openrtb/bid", json.dumps(pair_request).encode(), 200, JSON_HEADERS,
         json.dumps(answer).encode())
    )  # fmt: skip
    return docs


def _native_campaign(bid: dict[str, Any], request_body: bytes) -> str:
    """``cmp-native`` (policies/ads.sw's native campaign) when the bid has all its slots."""
    from slotwise.dsl.location import parse_location
    from slotwise.proxy.adapters import parse_response

    answer = {"id": "probe", "seatbid": [{"bid": [dict(bid, cid="cmp-native")]}]}
    document = parse_response(b"application/json", json.dumps(answer).encode(), request_body)
    assert document is not None
    slots = ("native:title", "native:img:main", "native:data:ctatext")
    (unit,) = document.units
    whole = all(unit.read(parse_location(slot)) is not None for slot in slots)
    return "cmp-native" if whole else str(bid.get("cid", "cmp-other"))


def _openrtb_documents() -> list[Document]:
    banner = IAB / "openrtb-2.6" / "openrtb2.6_01_6_2_1_Example_1_Simple_Banner.json"
    request = banner.read_bytes()
    return [
        ("POST", "/openrtb/bid", request, 200, JSON_HEADERS, path.read_bytes())
        for path in sorted((IAB / "openrtb-2.6").glob("openrtb2.6_0[6-9]_*.json"))
    ]


_AD_ID = re.compile(rb'(<Ad\b[^>]*?\bid=")([^"]*)(")')


def _vast_documents() -> list[Document]:
    """The VAST samples; an ad with a title and a media file becomes ``cmp-video``'s."""
    from slotwise.dsl.location import parse_location
    from slotwise.proxy.adapters.vast import VastDocument

    docs: list[Document] = []
    for path in sorted((IAB / "vast").glob("*/*.xml")):
        data = path.read_bytes()
        units = VastDocument(data).units
        slots = [parse_location("vast:AdTitle"), parse_location("vast:MediaFile")]
        whole = [all(unit.read(slot) is not None for slot in slots) for unit in units]
        ids = iter(whole)

        def rename(match: re.Match[bytes], ids: Any = ids) -> bytes:
            return match[1] + (b"cmp-video" if next(ids, False) else match[2]) + match[3]

        if len(_AD_ID.findall(data)) == len(units):  # every ad has an id: rename in order
            data = _AD_ID.sub(rename, data)
        name = f"/vast/{path.parent.name}/{path.name}"
        docs.append(("GET", name, b"", 200, XML_HEADERS, data))
    return docs


# -- recording ----------------------------------------------------------------------------------


def _refuse_changed_behaviours(phase: dict[str, Any], result: dict[str, Any]) -> None:
    """The traffic must not reach what issue 14 changed: a missing slot, two campaigns."""
    for request, answer in zip(phase["requests"], result["answers"], strict=True):
        causes = {r["record"]["fail_open"] for r in answer["records"]}
        if "missing_slot" in causes:
            raise SystemExit(f"{phase['name']}: {request['path']} has a campaign missing a slot")
    if "missing_slot" in result["counters"]["fail_opens"]:
        raise SystemExit(f"{phase['name']}: a campaign was missing a slot")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the recording to write (.jsonl.gz)")
    args = parser.parse_args()
    driver = load_driver()
    import slotwise

    lines = []
    for phase in (demo_phase(), shop_phase()):
        result = asyncio.run(driver.drive(phase))
        _refuse_changed_behaviours(phase, result)
        decided = sum(len(a["records"]) for a in result["answers"])
        print(f"{phase['name']}: {len(phase['requests'])} requests, {decided} decision records")
        lines.append(json.dumps({"phase": phase, "expected": result}, sort_keys=True))
    with gzip.open(args.out, "wt", encoding="utf-8", compresslevel=9) as out:
        out.write("\n".join(lines) + "\n")
    print(f"recorded with {Path(slotwise.__file__).parent} into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
