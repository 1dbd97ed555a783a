"""A catalogue item, how feeds and the admin API write it, and how a change to one reads.

An item is what the recommenders and the list writers need to know of a product: its id,
category, brand, price and availability, a title, URL and image for the storefront's item
shape, and a few free attributes (colour, material) for similarity. Feeds are JSON Lines (one
item per line) or CSV with a header row (``id,title,category,brand,price,currency,available,
url,image`` and any further column becomes an attribute). A change (:class:`ItemChange`)
either puts a whole item, patches some fields of one (availability, price) or removes one.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Annotated, Literal

import msgspec

from slotwise.errors import RECS, SlotwiseError

ItemId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/+=-]*$")
]
Label = Annotated[str, msgspec.Meta(max_length=256)]
Price = Annotated[float, msgspec.Meta(ge=0, le=1e12)]
Attributes = Annotated[
    dict[Annotated[str, msgspec.Meta(min_length=1, max_length=64)], str],
    msgspec.Meta(max_length=32),
]
MAX_ITEMS = 1_000_000  # a feed larger than this is refused rather than filling the memory


class CatalogueError(SlotwiseError):
    """A feed or a change that cannot be used: nothing of it is applied."""

    area = RECS
    code = "invalid_feed"


class ItemRefused(CatalogueError):
    """422 from the admin API: the item or change is invalid; nothing was applied."""

    code = "invalid_item"


class UnknownItem(CatalogueError):
    """404 from the admin API: no item with this id."""

    code = "unknown_item"


# gc=False: items hold only strings, numbers and a dict of strings, never a cycle, so the
# garbage collector need not traverse 100,000 of them on every full collection
class Item(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """One product of the catalogue."""

    id: ItemId
    title: Label = ""
    category: Label = ""
    brand: Label = ""
    price: Price | None = None
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")] | None = None
    available: bool = True
    url: Annotated[str, msgspec.Meta(max_length=2048)] = ""
    image: Annotated[str, msgspec.Meta(max_length=2048)] = ""
    attributes: Attributes = {}


class ItemPatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Some fields of one item (absent: unchanged): what the admin API's PATCH takes."""

    title: Label | None = None
    category: Label | None = None
    brand: Label | None = None
    price: Price | None = None
    available: bool | None = None
    url: Annotated[str, msgspec.Meta(max_length=2048)] | None = None
    image: Annotated[str, msgspec.Meta(max_length=2048)] | None = None
    attributes: Attributes | None = None

    def applied(self, item: Item) -> Item:
        changes = {
            name: value
            for name in self.__struct_fields__
            if (value := getattr(self, name)) is not None
        }
        return msgspec.structs.replace(item, **changes)


class ItemChange(msgspec.Struct, frozen=True, kw_only=True):
    """One change, as the admin API logs it for every worker: put, patch or remove."""

    op: Literal["put", "patch", "remove"]
    id: str
    at: float  # when it was made (a feed file newer than this supersedes it)
    item: Item | None = None
    patch: ItemPatch | None = None


_ITEM = msgspec.json.Decoder(Item)
_CSV_FIELDS = ("id", "title", "category", "brand", "price", "currency", "available", "url")


def parse_feed(data: bytes, name: str) -> list[Item]:
    """The items of a feed file (``.csv``: CSV, anything else: JSON Lines).

    Raises :class:`CatalogueError` naming the line and field of the first bad item; a feed
    is used whole or not at all.
    """
    items = list(_csv_items(data, name) if name.endswith(".csv") else _jsonl_items(data, name))
    if len(items) > MAX_ITEMS:
        raise CatalogueError(f"{name} has {len(items)} items; at most {MAX_ITEMS} are kept")
    return items


def _jsonl_items(data: bytes, name: str) -> Iterator[Item]:
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield _ITEM.decode(line)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise CatalogueError(
                f"{name}:{number}: not a catalogue item: {exc}",
                where=f"{name}:{number}",
                hint="one JSON object per line: "
                '{"id": "sku-1", "category": "shoes", "price": 49.9, "available": true}',
            ) from None


def _csv_items(data: bytes, name: str) -> Iterator[Item]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CatalogueError(f"{name}: not UTF-8 (byte offset {exc.start})") from None
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "id" not in reader.fieldnames:
        raise CatalogueError(
            f"{name}: a CSV feed needs a header row with an id column",
            where=name,
            hint="columns: " + ",".join(_CSV_FIELDS) + ",image and any attributes",
        )
    for number, row in enumerate(reader, 2):
        fields: dict[str, object] = {"attributes": {}}
        for column, value in row.items():
            if column is None or value is None or value == "":
                continue
            if column in ("price",):
                fields[column] = _number(value, name, number, column)
            elif column == "available":
                fields[column] = value.strip().lower() in ("1", "true", "yes", "in stock")
            elif column in Item.__struct_fields__:
                fields[column] = value
            else:
                fields["attributes"][column] = value  # type: ignore[index]
        try:
            yield msgspec.convert(fields, Item)
        except msgspec.ValidationError as exc:
            raise CatalogueError(
                f"{name}:{number}: not a catalogue item: {exc}", where=f"{name}:{number}"
            ) from None


def _number(value: str, name: str, number: int, column: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise CatalogueError(
            f"{name}:{number}: {column} {value!r} is not a number", where=f"{name}:{number}"
        ) from None
