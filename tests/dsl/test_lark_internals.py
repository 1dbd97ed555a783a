"""The Lark internals dsl/ uses for parse speed, pinned to the Lark version they were verified on.

Three shortcuts go past Lark's public API (what each saves: docs/benchmarks.md, "Lark internals"):

- the fused LALR loop (dsl/parser.py, ``_driver`` and ``_parse_fast``) reads Lark's parse table,
  its ``Shift`` marker, the grammar's rules and the reduce callbacks;
- ``PolicyLexer.lex`` (dsl/lexer.py) is a Lark custom lexer of interface 1
  (``__future_interface__ = 1``): it reads the text as a TextSlice and the parser's live state
  (``parse_conf.parse_table.states``, ``state_stack``) to read a keyword as a name;
- ``_token`` (dsl/lexer.py) fills a Token's slots without Token's constructor.

They also read two undocumented attributes, ``Lark.terminals`` and a terminal's
``pattern.type``/``pattern.value``. pyproject.toml pins Lark to the version below; the first two
tests fail on any other, the rest say which internal moved.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import lark
import pytest
from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput
from lark.parsers.lalr_analysis import Reduce, Shift

from slotwise.dsl import ast
from slotwise.dsl.lexer import COMMENTS, _token
from slotwise.dsl.parser import (
    _extend,
    _lists_for_repeats,
    _parse_fast,
    _Unexpected,
    parse_policy,
    parser,
)
from slotwise.dsl.syntax_errors import EXAMPLES
from slotwise.dsl.transform import BadValue
from slotwise.lab.workload import policy_text

VERIFIED = "1.3.1"
UPGRADE = (
    f"dsl/ relies on Lark internals verified against lark {VERIFIED} "
    "(tests/dsl/test_lark_internals.py). To upgrade: compare dsl/parser.py's _parse_fast with "
    "lark/parsers/lalr_parser_state.py's ParserState.feed_token, PolicyLexer.lex with "
    "lark/parser_frontends.py's _wrap_lexer (interface 1) and dsl/lexer.py's _token with "
    "Token.__new__; run tests/dsl and re-measure (docs/benchmarks.md, 'Lark internals'); then "
    "set VERIFIED here and the lark pin in pyproject.toml to the new version."
)
ROOT = Path(__file__).resolve().parents[2]


def test_installed_lark_is_the_verified_version() -> None:
    assert lark.__version__ == VERIFIED, f"lark {lark.__version__} is installed. {UPGRADE}"


def test_pyproject_pins_the_verified_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = [d for d in project["dependencies"] if d.replace(" ", "").startswith("lark")]
    assert [p.replace(" ", "") for p in pins] == [f"lark=={VERIFIED}"], f"{pins}. {UPGRADE}"


def test_the_parse_table_has_the_shape_the_fused_loop_reads() -> None:
    base = parser().parser.parser.parser
    table, callbacks = base.parse_table, base.callbacks
    end = table.end_states["start"]
    assert table.start_states["start"] in table.states, UPGRADE
    assert sorted(table.states) == list(range(len(table.states))), UPGRADE  # _driver's list
    reduces = 0
    for actions in table.states.values():
        for kind, (action, arg) in actions.items():
            assert isinstance(kind, str), UPGRADE
            assert action is Shift or action is Reduce, UPGRADE
            if action is Shift:
                assert isinstance(arg, int) and arg in table.states, UPGRADE
                continue
            reduces += 1
            assert callable(callbacks[arg]), UPGRADE
            assert isinstance(len(arg.expansion), int) and isinstance(arg.origin.name, str)
    assert reduces and end in table.states, UPGRADE
    # Lark's loop calls callbacks[token.type] on a shift when there is one; the fused loop
    # never does, which is the same only while no token type has a callback
    assert not [key for key in callbacks if isinstance(key, str)], UPGRADE


def test_repetitions_are_built_as_lists() -> None:
    # the fused loop replaces Lark's Tree per repetition and its child filters with lists and
    # slices (``_lists_for_repeats``); on shapes it does not know it keeps Lark's callbacks,
    # which parse the same but slower: a Lark upgrade that changes them must show up here
    callbacks = parser().parser.parser.parser.callbacks
    fast = _lists_for_repeats(callbacks)
    assert fast is not callbacks, UPGRADE
    helpers = [rule for rule in fast if rule.origin.name.startswith("__")]
    assert helpers and all(fast[rule] in (_extend, list) for rule in helpers), UPGRADE


def test_tokens_are_filled_like_the_constructor_fills_them() -> None:
    assert set(Token.__slots__) == {
        "type",
        "value",
        "start_pos",
        "line",
        "column",
        "end_line",
        "end_column",
        "end_pos",
    }, f"Token's slots changed: _token must fill every one. {UPGRADE}"
    made = _token("STRING", '"x y"', 10, 2, 5, 15)
    expected = Token("STRING", '"x y"', 10, 2, 5, 2, 10, 15)
    assert type(made) is Token and made == expected
    for name in Token.__slots__:
        assert getattr(made, name) == getattr(expected, name), (name, UPGRADE)


def test_the_lexers_errors_are_lark_errors_with_their_position() -> None:
    error = UnexpectedCharacters("ab\n  ;", 5, 2, 3)  # type: ignore[no-untyped-call]
    position: object = error.pos_in_stream
    assert (position, error.line, error.column) == (5, 2, 3), UPGRADE
    with pytest.raises(UnexpectedCharacters) as caught:
        parser().parse('policy "p" version 1\nsegment s: user.age > 3 ;')
    assert (caught.value.line, caught.value.column) == (2, 25), UPGRADE


KEYWORDS_AS_NAMES = """policy "p" version 1
campaign offer {
  slot new at "$.a" { variant offer "x" variant event "y" }
  rule "r" when user.is_new then pin new offer
}
"""


def test_lark_gives_the_lexer_its_live_parser_state() -> None:
    # `offer`, `new` and `event` are keywords; where only a name fits they are names. The lexer
    # can tell only from the parser's current state, which Lark hands to an interface-1 lexer.
    for policy in (parser().parse(KEYWORDS_AS_NAMES), _parse_fast(KEYWORDS_AS_NAMES)):
        assert isinstance(policy, ast.PolicyFile)
        (campaign,) = policy.items
        assert isinstance(campaign, ast.Campaign) and campaign.name == "offer", UPGRADE
        slot = campaign.members[0]
        assert isinstance(slot, ast.Slot), UPGRADE
        assert (slot.name, [v.name for v in slot.variants]) == ("new", ["offer", "event"])


def _texts() -> list[tuple[str, str]]:
    files = [
        *sorted((ROOT / "tests" / "dsl").rglob("*.sw")),
        *sorted((ROOT / "examples").rglob("*.sw")),
        *sorted((ROOT / "policies").rglob("*.sw")),
    ]
    texts = [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8")) for p in files]
    texts.append(("workload", policy_text(300, 3)))
    texts.append(("keywords as names", KEYWORDS_AS_NAMES))
    texts += [(label, snippet) for label, snippets in EXAMPLES.items() for snippet in snippets]
    return texts


def _outcome(parse: object, text: str) -> tuple[object, list[Token]]:
    comments: list[Token] = []
    COMMENTS.comments = comments
    try:
        return parse(text), comments  # type: ignore[operator]
    except (UnexpectedInput, _Unexpected):
        return "error", comments
    except BadValue as exc:  # raised by the same callback on either path
        return ("bad value", exc.message, exc.token.line, exc.token.column), comments
    finally:
        COMMENTS.comments = None


def test_the_fused_loop_builds_what_larks_parse_builds() -> None:
    texts = _texts()
    assert len(texts) > 60 and sum("#" in text for _, text in texts) > 5
    failing = 0
    for name, text in texts:
        fast, fast_comments = _outcome(_parse_fast, text)
        slow, slow_comments = _outcome(parser().parse, text)
        assert repr(fast) == repr(slow), f"{name}: {UPGRADE}"  # spans too (== ignores them)
        if slow == "error" or isinstance(slow, tuple):
            failing += 1
            continue
        assert fast_comments == slow_comments, name
        assert [(c.line, c.column) for c in fast_comments] == [
            (c.line, c.column) for c in slow_comments
        ]
    assert failing > 30  # the typical mistakes, and the conformance cases with syntax errors


def test_a_parse_error_still_reads_the_same() -> None:
    # the fused loop leaves errors to Lark's parser; this is what a user sees of one
    with pytest.raises(Exception) as caught:
        parse_policy('policy "p" version 1\ncampaign c { holdout 10 }', "x.sw")
    diagnostic = caught.value.diagnostics[0]  # type: ignore[attr-defined]
    assert (diagnostic.line, diagnostic.column) == (2, 25)
    assert diagnostic.message == "unexpected '}'; expected `%`"
    assert diagnostic.hint == "percentages need a % sign: holdout 10%, explore epsilon 5%"
