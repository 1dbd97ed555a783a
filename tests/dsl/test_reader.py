"""dsl/reader.py's shortcuts build what the plain constructors and Lark's own parse build,
spans included (the syntax tree's equality ignores spans, so these compare reprs)."""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer

from slotwise.dsl import ast, reader, rules
from slotwise.dsl.lexer import PolicyLexer
from slotwise.dsl.parser import _parse_fast, parser
from slotwise.lab.realistic_workload import policy_text

ROOT = Path(__file__).resolve().parents[2]


def test_a_filled_span_is_the_constructed_one() -> None:
    assert tuple(f.name for f in dataclasses.fields(ast.Span)) == reader._SPAN_FIELDS
    made = reader.new_span(1, 2, 3, 4)
    assert type(made) is ast.Span and repr(made) == repr(ast.Span(1, 2, 3, 4))
    assert made == ast.Span(1, 2, 3, 4) and hash(made) == hash(ast.Span(1, 2, 3, 4))


class _Spanned(Transformer[Token, Any]):
    """Every rule's span computed, the rules of ``reader._UNSPANNED`` too."""


def test_rules_built_without_a_span_do_not_read_it() -> None:
    parser()  # the keyword set the builders drop
    for name, node in rules.nodes().items():
        node.spanned = True
        setattr(_Spanned, name, node)
    grammar = resources.files("slotwise.dsl").joinpath("grammar.lark").read_text("utf-8")
    spanned = Lark(
        grammar,
        parser="lalr",
        lexer=PolicyLexer,
        strict=True,
        maybe_placeholders=False,
        keep_all_tokens=True,
        transformer=_Spanned(visit_tokens=False),
    )
    texts = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "examples").rglob("*.sw"))]
    texts += [p.read_text(encoding="utf-8") for p in sorted((ROOT / "policies").rglob("*.sw"))]
    texts.append(policy_text(400, 3))
    for text in texts:
        assert repr(_parse_fast(text)) == repr(spanned.parse(text))
