"""What Vowpal Wabbit's cost per update and per prediction is made of, at the bandit's size.

    .venv/bin/python scripts/bandit_vw_costs.py [--requests 2000]

The campaign of ``scripts/bench_bandit.py`` (3 slots of 10 variants with one attribute,
SquareCB 10) and its 12 varying signals. Two tables, thread CPU time, medians over the
requests (the workspaces are trained as they go, so the weights are not all zero):

1. one ``learn_multi`` under layout 1 (a slot update: shared example, the chosen variant,
   empty stand-ins for the others, as ``slotwise.proxy.learn.learner`` passes them), by the
   signals given (12, none) and the candidates (10, 2), with and without ``--no_predict`` (the
   learner's workspaces use it since issue 22; the same model, bit for bit);
2. one ``learn_multi`` and one ``predict_multi`` over 10 variants for feature layouts: layout 1
   (before issue 22: every shared namespace and every pair of them crossed with the variant,
   whose features are ``slot=``, the variant and its attributes); ``--ignore_linear`` on the
   shared namespaces; ``slot=`` in a namespace of its own crossed with the shared namespaces in
   pairs only; that with only the user x contextual triples (layout 3, today's:
   ``slotwise.proxy.bandit.workspace``); and layout 2 of docs/learning.md (pairs, user x
   contextual triples, no ``slot=``).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pylibvw
from vowpalwabbit import Workspace

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_bandit  # noqa: E402

from slotwise.dsl.loader import load_policy_set  # noqa: E402
from slotwise.dsl.schema_file import builtin_schema  # noqa: E402
from slotwise.proxy.bandit import from_compiled  # noqa: E402
from slotwise.proxy.bandit.features import FeatureMap  # noqa: E402
from slotwise.proxy.bandit.workspace import _LEARNING, shared_example  # noqa: E402

PAIRS = "uv cv dv gv tv"
USER_TRIPLES = "ucv udv ugv utv"
CONTEXT_TRIPLES = "cdv cgv ctv dgv dtv gtv"
SLOT_PAIRS = "us cs ds gs ts"
LAYOUTS = {
    "layout 1 (before issue 22)": (f"{PAIRS} {USER_TRIPLES} {CONTEXT_TRIPLES}", [], "v"),
    "layout 1, --ignore_linear u c d g t": (
        f"{PAIRS} {USER_TRIPLES} {CONTEXT_TRIPLES}",
        [a for n in "ucdgt" for a in ("--ignore_linear", n)],
        "v",
    ),
    "slot= in its own namespace, pairs only": (
        f"{PAIRS} {USER_TRIPLES} {CONTEXT_TRIPLES} {SLOT_PAIRS}",
        [],
        "s",
    ),
    "that, user x contextual triples only (layout 3)": (
        f"{PAIRS} {USER_TRIPLES} {SLOT_PAIRS}",
        [],
        "s",
    ),
    "layout 2 (no slot=, user x contextual triples)": (f"{PAIRS} {USER_TRIPLES}", [], None),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    policy = load_policy_set([bench_bandit.POLICY], builtin_schema())
    slot = from_compiled(policy.campaign("spring_sale")).slots[0]
    features = FeatureMap()
    rng = random.Random(1)
    signals = [bench_bandit._signals(rng) for _ in range(args.requests)]

    def variant(position: int, slot_namespace: str | None) -> dict[str, list[str]]:
        chosen = slot.variants[position]
        named = [f"{slot.name}={chosen.name}"]
        named += [f"{slot.name}.{k}={v}" for k, v in sorted(chosen.attributes.items())]
        found = {"variant": named}
        if slot_namespace == "v":
            named.insert(0, f"slot={slot.name}")
        elif slot_namespace is not None:
            found[slot_namespace] = [f"slot={slot.name}"]
        return found

    def workspace(interactions: str, extra: list[str]) -> Workspace:
        base = ["--cb_explore_adf", "--quiet", "--bit_precision", "18", *_LEARNING]
        base += ["--squarecb", "--gamma_scale", "10", *extra]
        return Workspace(
            arg_list=base + [a for i in interactions.split() for a in ("--interactions", i)]
        )

    def example(ws: Workspace, named: dict[str, list[str]] | None, label: str | None) -> Any:
        made = pylibvw.example(ws, 4)
        if named:
            made.push_feature_dict(ws, named)
        if label:
            made.set_label_string(ws, label, 4)
        ws.setup_example(made)
        return made

    def learn_cost(ws: Workspace, n_signals: int, candidates: int, slot_ns: str | None) -> float:
        others = [example(ws, None, None) for _ in range(candidates - 1)]
        spent = []
        for request in signals:
            kept = dict(list(request.items())[:n_signals])
            shared = shared_example(ws, features.shared(kept, personal=True))
            clicked = -float(rng.random() < 0.2)
            chosen = example(ws, variant(3, slot_ns), f"0:{clicked!r}:0.3")
            began = time.thread_time_ns()
            pylibvw.vw.learn_multi(ws, [shared, others[0], chosen, *others[1:]][: candidates + 1])
            spent.append(time.thread_time_ns() - began)
        return statistics.median(spent) / 1000

    print("| learn_multi | signals | candidates | median CPU |")
    print("| --- | ---: | ---: | ---: |")
    for extra in ([], ["--no_predict"]):
        for n_signals, candidates in ((12, 10), (12, 2), (0, 10), (0, 2)):
            ws = workspace(f"{PAIRS} {USER_TRIPLES} {CONTEXT_TRIPLES}", extra)
            cost = learn_cost(ws, n_signals, candidates, "v")
            name = "with --no_predict" if extra else "as VW defaults"
            print(f"| {name} | {n_signals} | {candidates} | {cost:.2f} us |")
    print()
    print("| layout | learn_multi | predict_multi, 10 variants |")
    print("| --- | ---: | ---: |")
    for name, (interactions, extra, slot_ns) in LAYOUTS.items():
        ws = workspace(interactions, extra)
        learned = learn_cost(ws, 12, 10, slot_ns)
        actions = [example(ws, variant(i, slot_ns), None) for i in range(10)]
        spent = []
        for request in signals:
            shared = shared_example(ws, features.shared(request, personal=True))
            began = time.thread_time_ns()
            pylibvw.vw.predict_multi(ws, [shared, *actions])
            spent.append(time.thread_time_ns() - began)
        print(f"| {name} | {learned:.2f} us | {statistics.median(spent) / 1000:.2f} us |")


if __name__ == "__main__":
    main()
