"""``slotwise bench match``: microseconds per match, compiled bitmap matcher vs reference.

Builds the workload of lab/workload.py as policy text, times parse + check + compile, then
times ``CompiledCampaign.eligible(ctx)`` (the proxy's call) and the reference evaluator on the
same contexts. Reports p50/p99 per match over all samples of several rounds, and checks that
both agree on every context it times.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rules", type=int, default=10_000, help="rules in the policy")
    parser.add_argument("--contexts", type=int, default=2_000, help="distinct requests")
    parser.add_argument("--rounds", type=int, default=5, help="timed passes over them")
    parser.add_argument(
        "--reference-contexts",
        type=int,
        default=0,
        help="requests for the (slow) reference evaluator; default scales with --rules",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    from slotwise.proxy.cli import UsageError

    if not 1 <= args.rules <= 200_000:
        raise UsageError("--rules must be between 1 and 200000")
    if args.contexts < 1 or args.rounds < 1:
        raise UsageError("--contexts and --rounds must be at least 1")
    if args.reference_contexts < 0:
        raise UsageError("--reference-contexts must be 0 (scale with --rules) or more")
    report = measure(args.rules, args.contexts, args.rounds, args.reference_contexts, args.seed)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(_text(report))
    return 0 if report["agree"] else 1


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def measure(
    rules: int, contexts: int, rounds: int, reference_contexts: int = 0, seed: int = 7
) -> dict[str, Any]:
    import gc
    import time

    from slotwise.dsl.compile import segments_of
    from slotwise.dsl.evaluate import evaluate_campaign
    from slotwise.dsl.explain import same_outcome
    from slotwise.dsl.loader import compile_sources
    from slotwise.dsl.parser import parser
    from slotwise.dsl.schema_file import builtin_schema
    from slotwise.lab.workload import contexts as make_contexts
    from slotwise.lab.workload import policy_text

    text = policy_text(rules, seed)
    schema = builtin_schema()
    started = time.perf_counter()
    parser()  # the grammar is built once per process; timed apart from the rules' build
    grammar_seconds = time.perf_counter() - started
    started = time.perf_counter()
    policy, loaded = compile_sources([("bench.sw", text)], schema)
    build_seconds = time.perf_counter() - started
    campaign = policy.campaigns[0]
    requests = list(make_contexts(contexts, seed + 4))
    gc.collect()
    gc.freeze()  # what a server does after loading: long-lived objects leave the GC's scans

    compiled_us: list[float] = []
    per_request: list[list[float]] = [[] for _ in requests]
    index_us: list[float] = []
    matched_sizes: list[int] = []
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for number, ctx in enumerate(requests):
            t0 = clock()
            campaign.eligible(ctx)
            t1 = clock()
            compiled_us.append((t1 - t0) / 1000)
            per_request[number].append((t1 - t0) / 1000)
        for ctx in requests:
            t0 = clock()
            matched = campaign.matched(ctx)
            t1 = clock()
            index_us.append((t1 - t0) / 1000)
            matched_sizes.append(campaign._index.count(matched))

    segments = segments_of(loaded.files)
    ast_campaign = next(i for f in loaded.files for i in f.items if hasattr(i, "rules"))
    reference_count = reference_contexts or max(5, min(contexts, 2_000_000 // max(rules, 1)))
    reference_us: list[float] = []
    agree = True
    for ctx in requests[:reference_count]:
        t0 = clock()
        result = evaluate_campaign(ast_campaign, ctx, segments)  # type: ignore[arg-type]
        t1 = clock()
        reference_us.append((t1 - t0) / 1000)
        compiled = campaign.eligible(ctx)
        if result.matched_rules != compiled.matched_rules or not all(
            same_outcome(result.slots[s], compiled[s]) for s in result.slots
        ):
            agree = False
    gc.unfreeze()
    stats = campaign._index.stats
    return {
        "rules": rules,
        "contexts": contexts,
        "rounds": rounds,
        "python": sys.version.split()[0],
        "build_seconds": round(build_seconds, 3),
        "grammar_seconds": round(grammar_seconds, 3),
        "build_stages": {k: round(v, 3) for k, v in loaded.timings.items()},
        "index": {
            "terms": stats.terms,
            "features": stats.features,
            "buckets": stats.buckets,
            "residual_rules": stats.residual_rules,
            "matched_rules_median": statistics.median(matched_sizes),
        },
        "compiled_eligible_us": _summary(compiled_us),
        # each request's median over the rounds: a time slice lost to another process on this
        # shared machine shows in one round, not in the median of several
        "compiled_eligible_request_median_us": _summary(
            [statistics.median(times) for times in per_request]
        ),
        "compiled_match_us": _summary(index_us),
        "reference_us": _summary(reference_us),
        "reference_contexts": len(reference_us),
        "speedup_p50": round(
            _percentile(reference_us, 0.5) / max(_percentile(compiled_us, 0.5), 1e-9), 1
        ),
        "agree": agree,
    }


def _summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50": round(_percentile(samples, 0.50), 1),
        "p90": round(_percentile(samples, 0.90), 1),
        "p99": round(_percentile(samples, 0.99), 1),
        "samples": len(samples),
    }


def _text(report: dict[str, Any]) -> str:
    lines = [
        f"rules: {report['rules']}  (python {report['python']})",
        f"parse + check + compile: {report['build_seconds']} s  {report['build_stages']}",
        f"(grammar built once per process beforehand: {report['grammar_seconds']} s)",
        "index: {features} lookups, {buckets} buckets, {terms} terms, {residual_rules} with "
        "residual checks, median {matched_rules_median} rules matched".format(**report["index"]),
    ]
    for key, label in (
        ("compiled_eligible_us", "compiled eligible()"),
        ("compiled_eligible_request_median_us", "  per-request median"),
        ("compiled_match_us", "compiled match only"),
        ("reference_us", "reference evaluator"),
    ):
        s = report[key]
        lines.append(
            f"{label:22s} p50 {s['p50']:>10.1f} us   p99 {s['p99']:>10.1f} us   "
            f"({s['samples']} samples)"
        )
    lines.append(f"speedup at p50: {report['speedup_p50']}x; agree: {report['agree']}")
    return "\n".join(lines)
