"""What each Lark-internal shortcut of the policy parser saves (docs/benchmarks.md).

Run with ``.venv/bin/pytest -m benchmark tests/benchmarks/test_parse_shortcuts.py -s``. Parses
the 10,000-rule workload of ``slotwise bench match`` with the shortcuts as they are, and with
each replaced by Lark's public API: Lark's own LALR loop (``Lark.parse``) instead of the fused
loop, Token's constructor instead of filling its slots, and Lark's contextual lexer instead of
PolicyLexer. Rounds alternate between the variants (CPU time, collector paused as in loading);
the table gives medians and each variant's median ratio to the shortcuts' own time in the same
round. tests/dsl/test_lark_internals.py pins the shortcuts to the Lark version. The fused
loop makes no Lark Token (dsl/reader.py's Tok); Lark's parser gets Tokens from
``reader.make_token``, which the variants replace: a compiled dsl/reader.py calls it directly,
so the two Lark.parse variants differ only with SLOTWISE_PURE=1.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

import pytest
from lark import Lark, Token

from slotwise.dsl import reader
from slotwise.dsl.loader import compile_sources
from slotwise.dsl.parser import _parse_fast, parser
from slotwise.dsl.schema_file import builtin_schema
from slotwise.dsl.transform import ToAst
from slotwise.lab.workload import policy_text

RULES, ROUNDS = 10_000, 11


def _constructed(kind: str, value: str, pos: int, line: int, column: int, end: int) -> Token:
    return Token(kind, value, pos, line, column, line, column + len(value), end)


@pytest.mark.benchmark
def test_what_the_parser_shortcuts_save(monkeypatch: pytest.MonkeyPatch) -> None:
    text = policy_text(RULES, 7)
    grammar = resources.files("slotwise.dsl").joinpath("grammar.lark").read_text("utf-8")
    contextual = Lark(
        grammar,
        parser="lalr",
        lexer="contextual",
        strict=True,
        maybe_placeholders=False,
        keep_all_tokens=True,
        transformer=ToAst(),
    )
    shortcut = reader.make_token

    def run(parse: Callable[[str], Any], token: Callable[..., Token]) -> Callable[[], Any]:
        def variant() -> Any:
            monkeypatch.setattr(reader, "make_token", token)
            return parse(text)

        return variant

    variants = {
        "shortcuts (fused loop, dsl/reader.py's tokens)": run(_parse_fast, shortcut),
        "Lark's LALR loop (Lark.parse), slot-filled tokens": run(parser().parse, shortcut),
        "both public (Lark.parse, Token(...))": run(parser().parse, _constructed),
        "Lark's contextual lexer and Lark.parse": run(contextual.parse, shortcut),
    }
    reference = _parse_fast(text)
    for name, variant in variants.items():
        assert variant() == reference, name
    times: dict[str, list[float]] = {name: [] for name in variants}
    order = list(variants.items())
    for round_ in range(ROUNDS):
        for name, variant in order if round_ % 2 == 0 else reversed(order):
            gc.collect()
            gc.disable()
            started = time.process_time()
            variant()
            times[name].append(time.process_time() - started)
            gc.enable()
    builds = []
    for _ in range(3):
        gc.collect()
        started = time.process_time()
        compile_sources([("bench.sw", text)], builtin_schema())
        builds.append(time.process_time() - started)
    base = times[order[0][0]]
    print(f"\nparse of {RULES:,} rules, CPU s, {ROUNDS} alternating rounds")
    for name, samples in times.items():
        ratio = statistics.median(a / b for a, b in zip(samples, base, strict=True))
        print(
            f"{name:45s} median {statistics.median(samples):.3f} "
            f"(min {min(samples):.3f})  x{ratio:.2f}"
        )
    print(f"build (parse + check + compile), median of 3: {statistics.median(builds):.3f} s")
