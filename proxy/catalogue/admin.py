"""``/_sw/admin/catalogue/items``: the catalogue changed live, behind the admin token.

- ``GET /_sw/admin/catalogue/items/{id}``: the item as the proxy serves it now;
- ``PUT /_sw/admin/catalogue/items/{id}``: the whole item (its ``id`` must be the path's);
- ``PATCH /_sw/admin/catalogue/items/{id}``: some fields (``{"available": false}``,
  ``{"price": 39.9}``); 404 ``unknown_item`` when there is no such item;
- ``DELETE /_sw/admin/catalogue/items/{id}``: the item leaves the catalogue;
- ``POST /_sw/admin/catalogue/items``: a JSON array of whole items, put in order.

A change applies to the next request this worker serves, and to the others' within
``catalogue.poll_interval``; it is kept in the store's ``catalogue`` log (LiveCatalogue). An
invalid body is 422 ``invalid_item``, naming where; nothing of it is applied.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from slotwise.proxy.catalogue.item import Item, ItemChange, ItemPatch, ItemRefused, UnknownItem
from slotwise.proxy.catalogue.live import LiveCatalogue
from slotwise.proxy.state import StoreUnavailable

if TYPE_CHECKING:
    from slotwise.proxy.events.endpoints import EventEndpoints

MAX_BODY = 8 << 20
_ENCODE = msgspec.json.Encoder()
_NO_STORE = {"Cache-Control": "no-store"}


def _answer(body: Any, status: int = 200) -> Response:
    return Response(_ENCODE.encode(body), status, headers=_NO_STORE, media_type="application/json")


def _refused(error: ItemRefused | UnknownItem, status: int) -> Response:
    body = {"code": error.code, "message": error.message}
    if error.where:
        body["where"] = error.where
    return _answer({"error": body}, status)


class CatalogueAdmin:
    """The handlers; the admin checks and body limits are the event endpoints' own."""

    def __init__(self, catalogue: LiveCatalogue, endpoints: EventEndpoints) -> None:
        self.catalogue = catalogue
        self.endpoints = endpoints

    async def item(self, request: Request) -> Response:
        refused = self.endpoints._admin_refusal(request)
        if refused is not None:
            return refused
        item_id = request.path_params["item_id"]
        method = request.method
        try:
            if method == "GET":
                return _answer(self._existing(item_id))
            if method == "DELETE":
                self._existing(item_id)
                await self.catalogue.apply([ItemChange(op="remove", id=item_id, at=time.time())])
                return _answer({"removed": item_id})
            body = await self._body(request)
            if method == "PUT":
                item = _decode(body, Item)
                if item.id != item_id:
                    raise ItemRefused(
                        f"the item's id {item.id!r} is not the path's {item_id!r}", where="$.id"
                    )
                change = ItemChange(op="put", id=item_id, at=time.time(), item=item)
            else:
                self._existing(item_id)
                patch = _decode(body, ItemPatch)
                change = ItemChange(op="patch", id=item_id, at=time.time(), patch=patch)
            await self.catalogue.apply([change])
            return _answer(self._existing(item_id))
        except UnknownItem as error:
            return _refused(error, 404)
        except ItemRefused as error:
            return _refused(error, 422)
        except StoreUnavailable as error:
            return self.endpoints._unavailable(error)

    async def items(self, request: Request) -> Response:
        refused = self.endpoints._admin_refusal(request)
        if refused is not None:
            return refused
        try:
            items = _decode(await self._body(request), list[Item])
            at = time.time()
            await self.catalogue.apply(
                [ItemChange(op="put", id=item.id, at=at, item=item) for item in items]
            )
        except ItemRefused as error:
            return _refused(error, 422)
        except StoreUnavailable as error:
            return self.endpoints._unavailable(error)
        return _answer({"put": len(items), "items": len(self.catalogue.current)})

    def _existing(self, item_id: str) -> Item:
        item = self.catalogue.current.get(item_id)
        if item is None:
            raise UnknownItem(f"no catalogue item {item_id!r}", where="path")
        return item

    async def _body(self, request: Request) -> bytes:
        from slotwise.proxy.events.endpoints import _json_media, _read_limited, _Refusal

        try:
            _json_media(request)
            return await _read_limited(
                request, MAX_BODY, self.endpoints.config.body_timeout, "batch_too_large",
                "send fewer items per request",
            )  # fmt: skip
        except _Refusal as refusal:
            raise ItemRefused(refusal.message) from None


def _decode(body: bytes, kind: Any) -> Any:
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        text = str(exc)
        reason, _, path = text.partition(" - at `")
        raise ItemRefused(f"not a valid item: {reason}", where=path.rstrip("`") or "$") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ItemRefused(f"not valid JSON: {exc}", where="$") from None


def catalogue_routes(catalogue: LiveCatalogue, endpoints: EventEndpoints) -> list[BaseRoute]:
    """The routes, relative to ``/_sw`` like the event endpoints'."""
    admin = CatalogueAdmin(catalogue, endpoints)
    return [
        Route("/admin/catalogue/items", admin.items, methods=["POST"]),
        Route(
            "/admin/catalogue/items/{item_id:path}",
            admin.item,
            methods=["GET", "PUT", "PATCH", "DELETE"],
        ),
    ]
