"""The example ad server as a pure ASGI app.

Routes::

    GET  /ads/{placement}   JSON creative (home-top, article-side, footer)
    POST /openrtb/bid       OpenRTB 2.6 bid request -> bid response (native or VAST adm), 204
                            when no impression can be filled
    GET  /vast/{placement}  VAST 4.1 (placement "preroll")
    GET  /health            ok

Run it: ``granian --interface asgi --port 8081 examples.adserver.app:app`` from the repository.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .creatives import json_ad, native_markup, vast

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_ids = itertools.count(1)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    method: str = scope["method"]
    request_id = f"r{next(_ids)}"
    if method == "GET" and path.startswith("/ads/"):
        ad = json_ad(path[len("/ads/") :], request_id)
        if ad is None:
            return await _reply(send, 404, b'{"error":"unknown placement"}')
        return await _reply(send, 200, json.dumps(ad).encode())
    if method == "GET" and path == "/vast/preroll":
        body = vast("cmp-video", request_id).encode()
        return await _reply(send, 200, body, b"application/xml; charset=utf-8")
    if method == "POST" and path == "/openrtb/bid":
        body = await _body(receive)
        try:
            request = json.loads(body)
        except ValueError:
            return await _reply(send, 400, b'{"error":"bid request is not JSON"}')
        response = bid_response(request, request_id)
        if response is None:
            return await _reply(send, 204, b"", None)
        return await _reply(send, 200, json.dumps(response).encode())
    if path == "/health":
        return await _reply(send, 200, b"ok", b"text/plain")
    return await _reply(send, 404, b'{"error":"not found"}')


def bid_response(request: Any, request_id: str) -> dict[str, Any] | None:
    """Bid on every native or video impression of an OpenRTB bid request."""
    if not isinstance(request, dict):
        return None
    bids = []
    for n, imp in enumerate(request.get("imp") or ()):
        if not isinstance(imp, dict):
            continue
        bid: dict[str, Any] = {"id": f"{request_id}-{n}", "impid": str(imp.get("id", n))}
        if "native" in imp:
            bid.update(
                price=2.10,
                cid="cmp-native",
                crid="cr-native-1",
                adomain=["shop.example"],
                adm=json.dumps(native_markup(request_id)),
            )
        elif "video" in imp:
            bid.update(
                price=6.50,
                cid="cmp-video",
                crid="cr-video-1",
                adomain=["shop.example"],
                adm=vast("cmp-video", request_id),
            )
        else:
            continue
        bids.append(bid)
    if not bids:
        return None
    return {
        "id": request.get("id", request_id),
        "seatbid": [{"seat": "example", "bid": bids}],
        "cur": "USD",
    }


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _reply(
    send: Send, status: int, body: bytes, content_type: bytes | None = b"application/json"
) -> None:
    headers = [(b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")]
    if content_type:
        headers.append((b"content-type", content_type))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
