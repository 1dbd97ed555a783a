"""``slotwise bench match``: microseconds per match, compiled bitmap matcher vs reference.

Two ways to run it:

- On a generated workload (``--workload realistic``, the default, lab/realistic_workload.py:
  rules as marketers write them; ``--workload simple``, lab/workload.py, the older one): builds
  the policy text, times parse + check + compile, then times ``CompiledCampaign.eligible(ctx)``
  (the proxy's call) on generated requests.
- On your own policies and requests: ``--policy FILE_OR_DIR`` (repeatable) and
  ``--contexts FILE.jsonl``, one JSON object of signals per line (or
  ``{"signals": {...}, "events": [{"event": "purchase", "ago": "2h"}], "now": SECONDS}``, as
  ``slotwise explain --signals`` reads). Each request is matched against the campaign the
  proxy would select for it.

Both report p50/p99 per match over all samples of several rounds and check the compiled
outcome against the reference evaluator (dsl/evaluate.py, the semantics ``slotwise explain``
shows) for every campaign on the checked requests; a disagreement fails the run (exit 1) and
is listed with the request's line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledPolicySet
    from slotwise.dsl.loader import Loaded
    from slotwise.types import Context, SignalSchema

WORKLOADS = ("realistic", "simple")
MAX_SHOWN = 10  # disagreements and bad lines listed in full


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workload",
        choices=WORKLOADS,
        default="realistic",
        help="generated rules: realistic (default: ORs, negations, segments, lists, ranges, "
        "behaviour, missing signals) or simple (the older workload)",
    )
    parser.add_argument("--rules", type=int, default=10_000, help="rules in the generated policy")
    parser.add_argument(
        "--policy",
        action="append",
        metavar="FILE_OR_DIR",
        help="time these policy files instead of a generated policy (repeatable)",
    )
    parser.add_argument(
        "--contexts",
        default="2000",
        metavar="N_OR_FILE.jsonl",
        help="how many requests to generate, or a JSONL file of requests (one JSON object of "
        "signals per line); required as a file with --policy",
    )
    parser.add_argument("--rounds", type=int, default=5, help="timed passes over them")
    parser.add_argument(
        "--reference-contexts",
        type=int,
        default=0,
        help="requests to check against the (slow) reference evaluator; default: every request "
        "of a file, a number that scales with --rules for generated ones",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--builtin-schema",
        action="store_true",
        help="check --policy files against the built-in signal schema instead of the "
        "installed providers'",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    from slotwise.proxy.cli import UsageError

    if not 1 <= args.rules <= 200_000:
        raise UsageError("--rules must be between 1 and 200000")
    if args.rounds < 1:
        raise UsageError("--rounds must be at least 1")
    if args.reference_contexts < 0:
        raise UsageError("--reference-contexts must be 0 (the default amount) or more")
    count, contexts_file = _contexts_option(args.contexts)
    if args.policy and contexts_file is None:
        raise UsageError("--policy needs --contexts FILE.jsonl: the requests to time it on")
    if args.policy:
        report = measure_files(
            args.policy,
            contexts_file or "",
            args.rounds,
            args.reference_contexts,
            args.builtin_schema,
        )
    else:
        report = measure(
            args.rules,
            count,
            args.rounds,
            args.reference_contexts,
            args.seed,
            workload=args.workload,
            contexts_file=contexts_file,
        )
    print(json.dumps(report, indent=2) if args.json else _text(report))
    return 0 if report["agree"] else 1


def _contexts_option(value: str) -> tuple[int, str | None]:
    """``--contexts``: a count of generated requests, or a file of requests."""
    from slotwise.proxy.cli import UsageError

    if value.isdigit():
        if int(value) < 1:
            raise UsageError("--contexts must be at least 1 (or a FILE.jsonl of requests)")
        return int(value), None
    return 0, value


# ---------------------------------------------------------------- requests from a file


@dataclass(frozen=True, slots=True)
class Request:
    """One request to time: its context and where it came from (a file's line, or 0)."""

    ctx: Context
    line: int = 0


def read_contexts(path: str, now: float) -> list[Request]:
    """The requests of a JSONL file; every bad line is reported with its number."""
    from slotwise.dsl.explain import SignalsFileError, context_from_json
    from slotwise.proxy.cli import UsageError

    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read --contexts {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"--contexts {path} is not UTF-8 text (byte {exc.start})") from None
    requests: list[Request] = []
    problems: list[str] = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            requests.append(Request(context_from_json(json.loads(text), now), number))
        except (json.JSONDecodeError, RecursionError) as exc:
            problems.append(f"{path}:{number}: not a JSON object: {exc}")
        except SignalsFileError as exc:
            problems.append(f"{path}:{number}: {exc}")
    if problems:
        more = len(problems) - MAX_SHOWN
        shown = problems[:MAX_SHOWN] + ([f"... and {more} more bad lines"] if more > 0 else [])
        raise UsageError(
            f"--contexts {path}: {len(problems)} bad line(s); each line is one JSON object of "
            'signals, or {"signals": {...}, "events": [...], "now": SECONDS}\n  '
            + "\n  ".join(shown)
        )
    if not requests:
        raise UsageError(f"--contexts {path} holds no requests (one JSON object per line)")
    return requests


# ---------------------------------------------------------------- measuring


def _percentile(samples: list[float], q: float) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def measure(
    rules: int,
    contexts: int,
    rounds: int,
    reference_contexts: int = 0,
    seed: int = 7,
    workload: str = "realistic",
    contexts_file: str | None = None,
) -> dict[str, Any]:
    """Generate a policy of ``rules`` rules, compile it and time it on requests."""
    from slotwise.dsl.schema_file import builtin_schema
    from slotwise.lab import realistic_workload
    from slotwise.lab import workload as simple_workload

    generator = realistic_workload if workload == "realistic" else simple_workload
    text = generator.policy_text(rules, seed)
    if contexts_file is not None:
        requests = read_contexts(contexts_file, generator.NOW)
    else:
        requests = [Request(ctx) for ctx in generator.contexts(contexts, seed + 4)]
    reference_count = reference_contexts or max(5, min(len(requests), 2_000_000 // rules))
    report = _measure([("bench.sw", text)], builtin_schema(), requests, rounds, reference_count)
    return {"workload": workload, **report}


def measure_files(
    paths: Sequence[str],
    contexts_file: str,
    rounds: int,
    reference_contexts: int = 0,
    builtin: bool = False,
) -> dict[str, Any]:
    """Time the policy files under ``paths`` on the requests of ``contexts_file``."""
    from slotwise.dsl.errors import PolicyError
    from slotwise.dsl.loader import read_sources
    from slotwise.dsl.schema_file import builtin_schema
    from slotwise.plugins.registry import default_schema

    sources, problems = read_sources(paths)
    if problems:
        raise PolicyError(problems)
    schema = builtin_schema() if builtin else default_schema()
    requests = read_contexts(contexts_file, time.time())
    report = _measure(sources, schema, requests, rounds, reference_contexts or len(requests))
    return {"workload": "files", "policy": list(paths), "contexts_file": contexts_file, **report}


def _measure(
    sources: Sequence[tuple[str, str]],
    schema: SignalSchema,
    requests: list[Request],
    rounds: int,
    reference_count: int,
) -> dict[str, Any]:
    import gc

    from slotwise.dsl.loader import compile_sources
    from slotwise.dsl.parser import parser

    started = time.perf_counter()
    parser()  # the grammar is built once per process; timed apart from the rules' build
    grammar_seconds = time.perf_counter() - started
    started, cpu = time.perf_counter(), time.process_time()
    policy, loaded = compile_sources(sources, schema)
    build_seconds = time.perf_counter() - started
    # CPU time too: on a shared machine the wall time counts other processes' turns
    build_cpu_seconds = time.process_time() - cpu
    selected = [(request, policy.select(request.ctx)) for request in requests]
    timed = [(request, campaign) for request, campaign in selected if campaign is not None]
    gc.collect()
    gc.freeze()  # what a server does after loading: long-lived objects leave the GC's scans
    try:
        timings = _time_matches(timed, rounds)
        check = _check(policy, loaded, requests[:reference_count])
    finally:
        gc.unfreeze()
    rules = sum(len(c.rules) for c in policy.campaigns)
    compiled_us, per_request, index_us, matched_sizes, cpu_us = timings
    reference_us = check["reference_us"]
    return {
        "rules": rules,
        "campaigns": len(policy.campaigns),
        "contexts": len(requests),
        "contexts_matched": len(timed),
        "rounds": rounds,
        "python": sys.version.split()[0],
        "build_seconds": round(build_seconds, 3),
        "build_cpu_seconds": round(build_cpu_seconds, 3),
        "grammar_seconds": round(grammar_seconds, 3),
        "build_stages": {k: round(v, 3) for k, v in loaded.timings.items()},
        "index": _index_stats(policy, matched_sizes),
        "compiled_eligible_us": _summary(compiled_us),
        # each request's median over the rounds: a time slice lost to another process on this
        # shared machine shows in one round, not in the median of several
        "compiled_eligible_request_median_us": _summary(
            [statistics.median(times) for times in per_request if times]
        ),
        "compiled_eligible_cpu_mean_us": round(cpu_us, 1),
        "compiled_match_us": _summary(index_us),
        "reference_us": _summary(reference_us),
        "reference_contexts": check["checked"],
        "speedup_p50": round(
            _percentile(reference_us, 0.5) / max(_percentile(compiled_us, 0.5), 1e-9), 1
        ),
        "agree": not check["disagreements"],
        "disagreements": check["disagreements"][:MAX_SHOWN],
        "disagreement_count": len(check["disagreements"]),
    }


def _time_matches(
    timed: list[tuple[Request, Any]], rounds: int
) -> tuple[list[float], list[list[float]], list[float], list[int], float]:
    compiled_us: list[float] = []
    per_request: list[list[float]] = [[] for _ in timed]
    index_us: list[float] = []
    matched_sizes: list[int] = []
    clock = time.perf_counter_ns
    cpu_ns = 0
    for _ in range(rounds):
        cpu = time.process_time_ns()
        for number, (request, campaign) in enumerate(timed):
            ctx = request.ctx
            t0 = clock()
            campaign.eligible(ctx)
            t1 = clock()
            compiled_us.append((t1 - t0) / 1000)
            per_request[number].append((t1 - t0) / 1000)
        cpu_ns += time.process_time_ns() - cpu
        for request, campaign in timed:
            ctx = request.ctx
            t0 = clock()
            matched = campaign.matched(ctx)
            t1 = clock()
            index_us.append((t1 - t0) / 1000)
            matched_sizes.append(campaign._index.count(matched))
    # the mean CPU time of a timed call (clock reads included): what other processes on a
    # shared machine cannot add to
    cpu_us = cpu_ns / 1000 / max(1, len(timed) * rounds)
    return compiled_us, per_request, index_us, matched_sizes, cpu_us


def _check(policy: CompiledPolicySet, loaded: Loaded, requests: list[Request]) -> dict[str, Any]:
    """Every campaign's compiled outcome against the reference evaluator, and the campaign
    selection, on each request."""
    from slotwise.dsl import ast
    from slotwise.dsl.compile import segments_of
    from slotwise.dsl.evaluate import evaluate_campaign, select_campaign
    from slotwise.dsl.explain import same_outcome

    segments = segments_of(loaded.files)
    campaigns = [i for f in loaded.files for i in f.items if isinstance(i, ast.Campaign)]
    reference_us: list[float] = []
    disagreements: list[str] = []
    clock = time.perf_counter_ns
    for number, request in enumerate(requests, start=1):
        ctx = request.ctx
        where = f"line {request.line}" if request.line else f"request {number}"
        chosen = policy.select(ctx)
        expected = select_campaign(campaigns, ctx, segments)
        if (chosen.name if chosen else None) != expected:
            disagreements.append(
                f"{where}: campaign selected {chosen.name if chosen else None}, "
                f"the reference selects {expected}"
            )
        for campaign in campaigns:
            t0 = clock()
            result = evaluate_campaign(campaign, ctx, segments)
            t1 = clock()
            if chosen is not None and campaign.name == chosen.name:
                reference_us.append((t1 - t0) / 1000)
            compiled = policy.campaign(campaign.name).eligible(ctx)
            if result.matched_rules != compiled.matched_rules:
                extra = sorted(set(compiled.matched_rules) - set(result.matched_rules))
                missing = sorted(set(result.matched_rules) - set(compiled.matched_rules))
                disagreements.append(
                    f"{where}: campaign {campaign.name}: compiled matched {extra[:5]} the "
                    f"reference does not; the reference matched {missing[:5]} it does not"
                )
                continue
            for slot, outcome in result.slots.items():
                if not same_outcome(outcome, compiled[slot]):
                    disagreements.append(
                        f"{where}: campaign {campaign.name}, slot {slot}: compiled "
                        f"{compiled[slot]}, reference {outcome}"
                    )
    return {"reference_us": reference_us, "disagreements": disagreements, "checked": len(requests)}


def _index_stats(policy: CompiledPolicySet, matched_sizes: list[int]) -> dict[str, Any]:
    stats = [c._index.stats for c in policy.campaigns]
    return {
        "terms": sum(s.terms for s in stats),
        "features": sum(s.features for s in stats),
        "buckets": sum(s.buckets for s in stats),
        "residual_rules": sum(s.residual_rules for s in stats),
        "matched_rules_median": statistics.median(matched_sizes) if matched_sizes else 0,
    }


def _summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50": round(_percentile(samples, 0.50), 1),
        "p90": round(_percentile(samples, 0.90), 1),
        "p99": round(_percentile(samples, 0.99), 1),
        "samples": len(samples),
    }


def _text(report: dict[str, Any]) -> str:
    source = (
        "policy " + ", ".join(report["policy"]) + f" on {report['contexts_file']}"
        if report["workload"] == "files"
        else f"{report['workload']} workload"
    )
    lines = [
        f"{source}: {report['rules']} rules in {report['campaigns']} campaign(s), "
        f"{report['contexts']} requests ({report['contexts_matched']} select a campaign)  "
        f"(python {report['python']})",
        f"parse + check + compile: {report['build_seconds']} s ({report['build_cpu_seconds']} s "
        f"CPU)  {report['build_stages']}",
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
    lines.append(f"compiled eligible() mean CPU time: {report['compiled_eligible_cpu_mean_us']} us")
    lines.append(
        f"speedup at p50: {report['speedup_p50']}x; checked against the reference on "
        f"{report['reference_contexts']} requests; agree: {report['agree']}"
    )
    if report["disagreements"]:
        lines.append(f"DISAGREEMENTS ({report['disagreement_count']}):")
        lines.extend(f"  {d}" for d in report["disagreements"])
    return "\n".join(lines)
