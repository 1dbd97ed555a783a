"""The example storefront: a small shop's JSON API as a pure ASGI app (slotwise fronts it).

Routes (JSON; the catalogue is ``catalogue.jsonl`` beside this file, or ``$STOREFRONT_CATALOGUE``)::

    GET    /api/home                      hero, sections (for_you, new_in), the cart's size
    GET    /api/categories                every category with its number of products
    GET    /api/categories/{slug}?page=N  a category listing, 24 a page (``per_page`` up to 96)
    GET    /api/products/{id}             a product page with ``similar`` products
    GET    /api/search?q=...&page=N       products whose title has every word of the query
    GET    /api/cart                      the cart, and ``cross_sell`` (the shop's own picks)
    POST   /api/cart/items                {"product_id": "...", "quantity": 1}
    DELETE /api/cart/items/{id}
    POST   /api/checkout                  the cart becomes an order (its id, items, total)
    PATCH  /api/admin/products/{id}       {"available": false} / {"price": 4.5}: the shop's stock
    GET    /health                        ok
    GET    /shop/{file}                   the SDK example pages of examples/shop (HTML): the
                                          storefront page, shop/storefront.html, renders
                                          this API through the proxy

Every page carries ``page_type`` (home, category, product, search, cart) and products in one
item shape: ``{"id", "title", "category", "brand", "price", "currency", "available", "url"}``.
The visitor's cart is kept per ``shop_session`` cookie (set on first use). The shop's own
lists are plain: newest ids first for ``for_you``, the same category for ``similar``, the
cheapest of other categories for ``cross_sell``; slotwise's policies replace them.

Run it: ``granian --interface asgi --port 8082 examples.storefront.app:app``.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

HERE = Path(__file__).resolve().parent
PER_PAGE = 24
MAX_PER_PAGE = 96
SECTION_SIZE = 12
FIELDS = ("id", "title", "category", "brand", "price", "currency", "available", "url")


class Shop:
    """The catalogue and the carts, in memory."""

    def __init__(self, catalogue: Path) -> None:
        self.products: dict[str, dict[str, Any]] = {}
        for line in catalogue.read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                self.products[item["id"]] = {key: item.get(key) for key in FIELDS}
        self.categories: dict[str, list[str]] = {}
        for item in self.products.values():
            self.categories.setdefault(item["category"], []).append(item["id"])
        self.carts: dict[str, dict[str, int]] = {}
        self.orders = itertools.count(1)

    def card(self, product_id: str) -> dict[str, Any]:
        return dict(self.products[product_id])

    def page(self, ids: list[str], page: int, per_page: int) -> dict[str, Any]:
        pages = max(1, -(-len(ids) // per_page))
        page = min(max(page, 1), pages)
        shown = ids[(page - 1) * per_page : page * per_page]
        return {
            "products": [self.card(i) for i in shown],
            "page": page,
            "pages": pages,
            "per_page": per_page,
            "total": len(ids),
        }

    def cart(self, session: str) -> dict[str, Any]:
        lines = self.carts.get(session, {})
        items = [
            {**self.card(pid), "quantity": quantity}
            for pid, quantity in lines.items()
            if pid in self.products
        ]
        total = round(sum((i["price"] or 0) * i["quantity"] for i in items), 2)
        return {"items": items, "count": sum(lines.values()), "total": total}


SHOP = Shop(Path(os.environ.get("STOREFRONT_CATALOGUE", HERE / "catalogue.jsonl")))


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
    query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
    session, fresh = _session(scope)
    try:
        status, body = await _route(method, path, query, session, receive)
    except _Problem as problem:
        status, body = problem.status, {"error": problem.message}
    except _Page as page:
        return await _page(send, page.name)
    headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
    if fresh:
        cookie = f"shop_session={session}; Path=/; HttpOnly; SameSite=Lax"
        headers.append((b"set-cookie", cookie.encode()))
    data = json.dumps(body).encode()
    headers.append((b"content-length", str(len(data)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


PAGES = HERE.parent / "shop"


class _Page(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


async def _page(send: Send, name: str) -> None:
    """An HTML page of examples/shop (by its plain name: no paths, no other files)."""
    target = PAGES / name
    if not name.endswith(".html") or "/" in name or not target.is_file():
        status, data, kind = 404, b"not found\n", b"text/plain"
    else:
        status, data, kind = 200, target.read_bytes(), b"text/html; charset=utf-8"
    headers = [(b"content-type", kind), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


class _Problem(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def _route(  # noqa: C901 - one flat table of routes reads best
    method: str, path: str, query: dict[str, str], session: str, receive: Receive
) -> tuple[int, Any]:
    shop = SHOP
    parts = [unquote(p) for p in path.strip("/").split("/")]
    if method == "GET" and path == "/health":
        return 200, {"ok": True}
    if method == "GET" and parts[0] == "shop" and len(parts) == 2:
        raise _Page(parts[1])
    if parts[:1] != ["api"]:
        raise _Problem(404, "not found")
    route = parts[1:]
    if method == "GET" and route == ["home"]:
        return 200, _home(shop, session)
    if method == "GET" and route == ["categories"]:
        return 200, {
            "page_type": "categories",
            "categories": [
                {"slug": k, "count": len(v)} for k, v in sorted(shop.categories.items())
            ],
        }
    if method == "GET" and len(route) == 2 and route[0] == "categories":
        ids = shop.categories.get(route[1])
        if ids is None:
            raise _Problem(404, f"no category {route[1]!r}")
        paging = shop.page(ids, _int(query, "page", 1), _per_page(query))
        return 200, {"page_type": "category", "category": route[1], **paging}
    if method == "GET" and len(route) == 2 and route[0] == "products":
        if route[1] not in shop.products:
            raise _Problem(404, f"no product {route[1]!r}")
        product = shop.card(route[1])
        siblings = [i for i in shop.categories[product["category"]] if i != route[1]]
        product["similar"] = [shop.card(i) for i in siblings[:8]]
        return 200, {"page_type": "product", "product": product}
    if method == "GET" and route == ["search"]:
        words = query.get("q", "").upper().split()
        if not words:
            raise _Problem(400, "search needs q")
        ids = [i for i, p in shop.products.items() if all(w in p["title"].upper() for w in words)]
        paging = shop.page(ids, _int(query, "page", 1), _per_page(query))
        return 200, {"page_type": "search", "query": query["q"], **paging}
    if route[:1] == ["cart"]:
        return await _cart(shop, method, route, session, receive)
    if method == "POST" and route == ["checkout"]:
        cart = shop.cart(session)
        if not cart["items"]:
            raise _Problem(409, "the cart is empty")
        order = {
            "order_id": f"order-{next(shop.orders)}-{uuid.uuid4().hex[:6]}",
            "items": [{"product_id": i["id"], "quantity": i["quantity"], "price": i["price"]}
                      for i in cart["items"]],
            "value": cart["total"],
            "currency": "GBP",
        }  # fmt: skip
        shop.carts.pop(session, None)
        return 200, {"page_type": "order", "order": order}
    if method == "PATCH" and len(route) == 3 and route[:2] == ["admin", "products"]:
        changed = shop.products.get(route[2])
        if changed is None:
            raise _Problem(404, f"no product {route[2]!r}")
        change = await _json(receive)
        for key in ("available", "price"):
            if key in change:
                changed[key] = change[key]
        return 200, changed
    raise _Problem(404, "not found")


def _home(shop: Shop, session: str) -> dict[str, Any]:
    ids = list(shop.products)
    picked = [shop.card(i) for i in ids[-SECTION_SIZE:]]
    newest = [shop.card(i) for i in ids[:SECTION_SIZE]]
    return {
        "page_type": "home",
        "hero": {"title": "Gifts for every day", "image": "/static/hero.jpg", "link": "/"},
        "sections": {
            "for_you": {"title": "Picked for you", "items": picked},
            "new_in": {"title": "New in", "items": newest},
        },
        "cart": {"count": shop.cart(session)["count"]},
    }


async def _cart(
    shop: Shop, method: str, route: list[str], session: str, receive: Receive
) -> tuple[int, Any]:
    lines = shop.carts.setdefault(session, {})
    if method == "POST" and route == ["cart", "items"]:
        body = await _json(receive)
        product_id = body.get("product_id")
        if product_id not in shop.products:
            raise _Problem(404, f"no product {product_id!r}")
        if not shop.products[product_id]["available"]:
            raise _Problem(409, f"{product_id} is out of stock")
        lines[product_id] = lines.get(product_id, 0) + max(1, int(body.get("quantity", 1)))
    elif method == "DELETE" and len(route) == 3 and route[1] == "items":
        lines.pop(route[2], None)
    elif not (method == "GET" and route == ["cart"]):
        raise _Problem(404, "not found")
    cart = shop.cart(session)
    in_cart = {i["id"] for i in cart["items"]}
    others = sorted(
        (p for p in shop.products.values() if p["id"] not in in_cart and p["available"]),
        key=lambda p: (p["price"] or 0, p["id"]),
    )
    return 200, {"page_type": "cart", "cart": cart, "cross_sell": [dict(p) for p in others[:6]]}


def _session(scope: Scope) -> tuple[str, bool]:
    for name, value in scope["headers"]:
        if name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, _, found = part.strip().partition("=")
                if key == "shop_session" and found:
                    return found, False
    return secrets.token_urlsafe(12), True


def _int(query: dict[str, str], name: str, default: int) -> int:
    try:
        return int(query.get(name, default))
    except ValueError:
        raise _Problem(400, f"{name} must be a whole number") from None


def _per_page(query: dict[str, str]) -> int:
    return min(max(_int(query, "per_page", PER_PAGE), 1), MAX_PER_PAGE)


async def _json(receive: Receive) -> dict[str, Any]:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    try:
        body = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        raise _Problem(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise _Problem(400, "the body must be a JSON object")
    return body
