"""`slotwise bench offers` with carts of many values: what the offers step costs when the
pages do not repeat.

`slotwise bench offers` serves one cart page again and again, so a model's distribution is
computed once and remembered (slotwise.proxy.bandit.engine remembers VW's per context, and the
page's cart value is part of the context). Real cart pages carry many cart values; this runs
the same measurement with the page's subtotal cycling through CARTS values ($20 to $300), from
whichever slotwise is first on PYTHONPATH (scripts/bench_offers_interleaved.py --carts runs it
from the tree before and this one alternately). Prints the bench's JSON figures.

    PYTHONPATH=. .venv/bin/python scripts/offers_bench_carts.py 500 20000
"""

from __future__ import annotations

import itertools
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import slotwise.lab.offers_bench as bench


def main() -> int:
    carts, decisions = int(sys.argv[1]), int(sys.argv[2])
    pages = []
    for n in range(carts):
        subtotal = round(20.0 + 280.0 * n / max(carts - 1, 1), 2)
        page = json.loads(bench.CART)
        page["cart"]["subtotal"] = subtotal
        pages.append(json.dumps(page).encode())
    cycle = itertools.cycle(pages)
    parse = bench.parse_response

    def varied(content_type: bytes, _body: bytes, encoding: bytes) -> Any:
        return parse(content_type, next(cycle), encoding)

    bench.parse_response = varied  # type: ignore[assignment]
    with tempfile.TemporaryDirectory(prefix="slotwise-offers-carts-") as folder:
        figures = bench.measure(decisions, Path(folder))
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
