"""Instructions per decision of the campaigns step alone, for one source tree (under callgrind).

Usage (from outside the repository; TREE is this tree or an extracted older one,
``git archive REV | tar -x -C /tmp/base``)::

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \\
        .venv/bin/python scripts/bench_campaign_instructions.py TREE ROW N

ROW ``c``: the bench's 3-slot JSON campaign applies and is decided (rule chooser, seeded);
``b``: it does not apply. Each of N decisions parses the creative afresh and runs
``Campaigns().personalise``. Run N = 5,000 and N = 20,000 per tree and row: the difference of
callgrind's "Collected" totals over 15,000 is the instructions per decision (the start-up
drops out). The garbage collector's start-up objects are frozen so that the tree's module
count does not weigh on collections.
"""

from __future__ import annotations

import gc
import json
import random
import sys

tree, row, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, tree)

from slotwise.dsl.loader import compile_sources  # noqa: E402
from slotwise.plugins.gather import Gathered  # noqa: E402
from slotwise.plugins.registry import default_schema  # noqa: E402
from slotwise.proxy.adapters import parse_response  # noqa: E402
from slotwise.proxy.chooser import RuleChooser  # noqa: E402
from slotwise.proxy.decide import Engine  # noqa: E402
from slotwise.proxy.exchange import Exchange  # noqa: E402
from slotwise.proxy.metrics import ProxyMetrics  # noqa: E402
from slotwise.proxy.personalisers.campaigns import Campaigns  # noqa: E402
from slotwise.proxy.policy_snapshot import PolicySnapshot  # noqa: E402
from slotwise.proxy.tracking import ClickSigner  # noqa: E402
from slotwise.types import NoHistory  # noqa: E402

POLICY = """policy "bench" version 1

campaign spring {
  applies when ad.campaign_id == "cmp-spring"
  slot headline at "$.creative.headline" {
    variant h1 "Spring deals are here"
    variant h2 "Save 20% this week"
  }
  slot image at "$.creative.image_url" {
    variant a "https://cdn.example/a.jpg"
    variant b "https://cdn.example/b.jpg"
  }
  slot cta at "$.creative.cta" {
    variant shop "Shop now"
    variant see "See the deals"
  }
}
"""
CREATIVE = {"headline": "H", "image_url": "https://cdn.example/x.jpg", "cta": "Go"}
campaign_id = "cmp-spring" if row == "c" else "cmp-other"
BODY = json.dumps(
    {"campaign_id": campaign_id, "placement": "home-top", "creative": CREATIVE}
).encode()

policy, _ = compile_sources([("b.sw", POLICY)], default_schema())
metrics = ProxyMetrics()
engine = Engine(
    upstream=None,  # type: ignore[arg-type]
    policies=PolicySnapshot(None, default_schema(), metrics),
    chooser=RuleChooser(random.Random(3)),
    decision_log=None,  # type: ignore[arg-type]
    metrics=metrics,
    signer=ClickSigner(b"k" * 32, "https://ads.example"),
)
gathered = Gathered({"device.type": "mobile", "geo.country": "DE"}, False, None, NoHistory())
step = Campaigns()
gc.collect()
gc.freeze()
records = 0
for _ in range(n):
    exchange = Exchange({"headers": [], "scheme": "https"}, 0.0, policy=policy, gathered=gathered)
    exchange.document = parse_response(b"application/json", BODY, b"")
    exchange.now = 1.0
    step.personalise(engine, exchange)
    records += len(exchange.records or ())
print(tree, row, n, records)
