"""Build examples/storefront/catalogue.jsonl from the UCI "Online Retail" sample.

Source: ``online-retail-40k-sample.csv`` from the project's public retail data (a 40,000-line
random sample of the UCI Machine Learning Repository's "Online Retail" data set: Chen, Sain,
Guo (2012), CC BY 4.0; a UK gift retailer's invoice lines, 2010-12 to 2011-12). CC BY 4.0
allows sharing adapted material with attribution: this header and the README are it.

One catalogue item per product stock code (five digits, a letter may follow: the others are
postage, fees and adjustments) that has a positive price and a description:

- ``id``: ``sku-`` + the stock code; ``title``: the description, in title case;
- ``price``: the median unit price of its lines (GBP);
- ``category``: the first rule of ``CATEGORIES`` whose words appear in the description
  (``gifts`` when none does): the data set has no categories;
- ``brand``: the product line named in the description (``Retrospot``, ``Regency``...), else
  ``Home Basics``: the data set has no brands either, and a shop's ranges play that part;
- ``available``: true, except a deterministic 4% (by a hash of the code) out of stock;
- ``url``: the storefront's product page, ``/products/<id>``.

Run from the repository (it prints what it wrote)::

    python3 examples/storefront/build_catalogue.py \
        ../shared/data/retail/online-retail-40k-sample.csv
"""

from __future__ import annotations

import csv
import hashlib
import json
import statistics
import sys
from pathlib import Path

CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("christmas", ("CHRISTMAS", "XMAS", "ADVENT", "SNOWFLAKE", "REINDEER", "SANTA")),
    ("bags", ("BAG", "BAGS", "TOTE", "SHOPPER")),
    ("candles-and-lights", ("CANDLE", "CANDLES", "T-LIGHT", "LANTERN", "LIGHT", "LIGHTS", "LAMP")),
    ("kitchen", ("MUG", "MUGS", "CUP", "CUPS", "TEACUP", "BOWL", "PLATE", "PLATES", "JAR",
                 "CAKE", "CUTLERY", "TEA", "BOTTLE", "TIN", "TINS", "PANTRY", "LUNCH", "JUG",
                 "SPOON", "BAKING", "KITCHEN", "APRON", "TEAPOT", "COASTER", "COASTERS")),
    ("stationery", ("CARD", "CARDS", "WRAP", "PAPER", "PENCIL", "PENCILS", "NOTEBOOK",
                    "STICKER", "STICKERS", "ENVELOPE", "TAPE", "PEN", "ERASER")),
    ("kids", ("TOY", "DOLLY", "GAME", "CHILDS", "CHILDRENS", "SPACEBOY", "PLAYHOUSE", "DOLL",
              "JIGSAW", "SKIPPING", "BABY")),
    ("garden", ("GARDEN", "PLANT", "BIRD", "WATERING", "FLOWER", "POT", "HEN", "PLANTER")),
    ("party", ("PARTY", "BUNTING", "BIRTHDAY", "BALLOON", "NAPKIN", "NAPKINS", "CONFETTI")),
    ("accessories", ("BRACELET", "NECKLACE", "EARRINGS", "RING", "HAIR", "PURSE", "UMBRELLA",
                     "SCARF", "HANDBAG", "CHARM", "BROOCH")),
    ("home-decor", ("SIGN", "FRAME", "CLOCK", "DECORATION", "HANGING", "ORNAMENT", "WALL",
                    "CUSHION", "DOORMAT", "MIRROR", "DRAWER", "KNOB", "HOOK", "VASE", "BOX",
                    "HOLDER", "STORAGE", "BASKET", "TRAY")),
)  # fmt: skip
BRANDS = (
    "RETROSPOT", "REGENCY", "POLKADOT", "SPACEBOY", "PAISLEY", "DOLLY GIRL", "WOODLAND",
    "CHARLOTTE", "SUKI", "SKULL", "STRAWBERRY", "BAKELIKE", "FELTCRAFT", "UNION JACK", "FAIRY",
    "VINTAGE", "ROSE", "HEART",
)  # fmt: skip
OUT_OF_STOCK_SHARE = 0.04


def category_of(description: str) -> str:
    words = set(description.split())
    for category, keys in CATEGORIES:
        if words.intersection(keys):
            return category
    return "gifts"


def brand_of(description: str) -> str:
    for brand in BRANDS:
        if brand in description:
            return brand.title()
    return "Home Basics"


def available(code: str) -> bool:
    digest = hashlib.sha256(code.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 >= OUT_OF_STOCK_SHARE


def build(source: Path) -> list[dict[str, object]]:
    prices: dict[str, list[float]] = {}
    titles: dict[str, str] = {}
    with source.open(encoding="utf-8", errors="replace", newline="") as file:
        for row in csv.DictReader(file):
            code = row["StockCode"].strip()
            description = " ".join(row["Description"].split())
            try:
                price = float(row["UnitPrice"])
            except ValueError:
                continue
            # products have five-digit codes (a letter may follow); the others are postage,
            # fees, discounts and manual adjustments
            if not code[:5].isdigit() or not code.isalnum() or not description or price <= 0:
                continue
            if row["InvoiceNo"][:1] == "C":
                continue
            if not any(c.isalpha() for c in description) or description.isdigit():
                continue
            prices.setdefault(code, []).append(price)
            titles.setdefault(code, description.upper())
    items = []
    for code in sorted(prices):
        description = titles[code]
        items.append(
            {
                "id": f"sku-{code}",
                "title": description.title(),
                "category": category_of(description),
                "brand": brand_of(description),
                "price": round(statistics.median(prices[code]), 2),
                "currency": "GBP",
                "available": available(code),
                "url": f"/products/sku-{code}",
            }
        )
    return items


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} ONLINE_RETAIL_CSV", file=sys.stderr)
        return 2
    items = build(Path(argv[1]))
    target = Path(__file__).with_name("catalogue.jsonl")
    target.write_text("".join(json.dumps(item, separators=(",", ":")) + "\n" for item in items))
    counts: dict[str, int] = {}
    for item in items:
        counts[str(item["category"])] = counts.get(str(item["category"]), 0) + 1
    print(
        f"{target}: {len(items)} items; " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
