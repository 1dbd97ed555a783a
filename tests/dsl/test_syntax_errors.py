"""Syntax errors: located, friendly, never a traceback; the table of typical mistakes works."""

from __future__ import annotations

import pytest

from slotwise.dsl.errors import PolicyError
from slotwise.dsl.parser import parse_policy
from slotwise.dsl.syntax_errors import EXAMPLES

SNIPPETS = [(label, snippet) for label, snippets in EXAMPLES.items() for snippet in snippets]


@pytest.mark.parametrize(("label", "snippet"), SNIPPETS)
def test_each_typical_mistake_gets_its_hint(label: str, snippet: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(snippet, "x.sw")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code in ("syntax_error", "bad_header")
    assert diagnostic.line >= 1 and diagnostic.column >= 1
    assert diagnostic.hint == label or diagnostic.hint  # a character hint may come first
    if diagnostic.code == "syntax_error" and "character" not in diagnostic.message:
        assert diagnostic.hint == label


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\x00\x01",
        'policy "p" version 1\ncampaign c { slot s at "$.a" { variant v "unterminated } }',
        'policy "p" version 1\n' + "segment s: " + "not " * 200 + "user.is_new",
        'policy "p" version 99999999999999999999\n',
        'policy "p" version 1\ncampaign c { holdout 1e9% }',
    ],
)
def test_garbage_gives_diagnostics_not_tracebacks(text: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "x.sw")
    assert caught.value.diagnostics
    assert all(d.file == "x.sw" for d in caught.value.diagnostics)


def test_redundant_parentheses_are_fine() -> None:
    text = 'policy "p" version 1\nsegment s: ' + "(" * 500 + "user.is_new" + ")" * 500
    assert parse_policy(text).items
