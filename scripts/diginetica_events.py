"""Convert the Diginetica purchases to slotwise events (and a catalogue) for ``recs replay``.

Source (the project's public retail data, ``../shared/data/retail/``):
``diginetica-train-purchases.csv`` (``sessionId;userId;timeframe;eventdate;ordernumber;itemId``:
one row per item bought, CIKM Cup 2016 Track 2, DIGINETICA) and
``diginetica-product-categories.csv`` (``itemId;categoryId``).

Events (the ``/_sw/events`` schema, one per line, in time order):

- each row is a ``product_view`` of its item at ``eventdate`` (midnight UTC) plus
  ``timeframe`` milliseconds (the time since the session's start): the data holds only what
  was bought, so the views are the bought items, in the order they were bought;
- each order (``ordernumber``) is then a ``purchase`` of its items, one millisecond after
  its last row (values and currency are not in the data: 0 and EUR);
- the subject is ``user_id`` ``dg-u<userId>`` when the user is known, with ``anonymous_id``
  ``dg-s<sessionId>`` always (so anonymous sessions stay apart);
- event ids are ``dg-<row>`` and ``dg-o<ordernumber>``.

The catalogue (``--catalogue``) has one item per product of the categories file that the
purchases name, its ``category`` the category id (no brands, prices or titles in the data).

    python3 scripts/diginetica_events.py ../shared/data/retail var/diginetica
    slotwise recs replay var/diginetica/events.jsonl --catalogue var/diginetica/catalogue.jsonl
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys
from pathlib import Path


def convert(source: Path, target: Path) -> tuple[int, int]:
    rows = list(csv.DictReader((source / "diginetica-train-purchases.csv").open(), delimiter=";"))
    events: list[tuple[float, int, dict[str, object]]] = []
    orders: dict[str, list[tuple[float, str, dict[str, object]]]] = {}
    for number, row in enumerate(rows):
        day = dt.datetime.fromisoformat(row["eventdate"]).replace(tzinfo=dt.UTC).timestamp()
        at = day + int(row["timeframe"]) / 1000.0
        who: dict[str, object] = {"anonymous_id": f"dg-s{row['sessionId']}"}
        if row["userId"] != "NA":
            who["user_id"] = f"dg-u{row['userId']}"
        item = row["itemId"]
        view = {"type": "product_view", "id": f"dg-{number}", "time": round(at, 3), **who,
                "properties": {"product_id": item}}  # fmt: skip
        events.append((at, 0, view))
        orders.setdefault(row["ordernumber"], []).append((at, item, who))
    for order, lines in orders.items():
        at = max(line[0] for line in lines) + 0.001
        items = list(dict.fromkeys(line[1] for line in lines))
        purchase = {"type": "purchase", "id": f"dg-o{order}", "time": round(at, 3), **lines[0][2],
                    "properties": {"order_id": f"dg-{order}", "value": 0.0, "currency": "EUR",
                                   "items": [{"product_id": i} for i in items]}}  # fmt: skip
        events.append((at, 1, purchase))
    events.sort(key=lambda e: (e[0], e[1]))
    target.mkdir(parents=True, exist_ok=True)
    with (target / "events.jsonl").open("w") as out:
        for _, _, event in events:
            out.write(json.dumps(event, separators=(",", ":")) + "\n")
    named = {row["itemId"] for row in rows}
    items = 0
    with (target / "catalogue.jsonl").open("w") as out:
        with (source / "diginetica-product-categories.csv").open() as file:
            for row in csv.DictReader(file, delimiter=";"):
                if row["itemId"] in named:
                    items += 1
                    item = {"id": row["itemId"], "category": row["categoryId"]}
                    out.write(json.dumps(item, separators=(",", ":")) + "\n")
    return len(events), items


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(f"usage: {argv[0]} RETAIL_DATA_DIR TARGET_DIR", file=sys.stderr)
        return 2
    events, items = convert(Path(argv[1]), Path(argv[2]))
    print(f"{argv[2]}/events.jsonl: {events} events; catalogue.jsonl: {items} items")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
