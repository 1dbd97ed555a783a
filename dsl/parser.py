"""Text to syntax tree: Lark LALR (strict, with positions), limits, and friendly syntax errors.

``parse_policy(text, path)`` returns a ``PolicyFile`` or raises ``PolicyError``. It never lets a
Lark or Python exception escape: oversized files, over-deep nesting, bad characters and
unexpected tokens all become diagnostics with a location, the source line and a caret.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import Any

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.parse_tree_builder import ChildFilterLALR_NoPlaceholders, ExpandSingleChild
from lark.parsers.lalr_analysis import Shift

from slotwise.dsl import ast, reader
from slotwise.dsl.errors import Diagnostic, PolicyError
from slotwise.dsl.lexer import COMMENTS, PolicyLexer
from slotwise.dsl.syntax_errors import EXAMPLES, describe_terminal, hint_for_character
from slotwise.dsl.transform import BadValue, ToAst, set_anonymous_terminals

_HEADER = re.compile(r'\s*(?:#[^\n]*\n\s*)*policy\s+"(?:[^"\\\n]|\\.)*"\s+version\s+\d+\b')
MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_CONDITION_DEPTH = 32
LANGUAGE_VERSIONS = (1,)


@functools.cache
def parser() -> Lark:
    """The one Lark parser, built on first use (the request path never calls this).

    It reads the tokens of the fast lexer in dsl/lexer.py and builds the frozen syntax tree
    while it reduces (an inline transformer: no intermediate parse tree). Lark passes no
    positions to inline transformers, so every token is kept and ToAst computes each node's
    span from its children before dropping the keywords.
    """
    grammar = resources.files("slotwise.dsl").joinpath("grammar.lark").read_text("utf-8")
    options: dict[str, Any] = dict(
        parser="lalr", lexer=PolicyLexer, strict=True, maybe_placeholders=False
    )
    lark = Lark(grammar, keep_all_tokens=True, transformer=ToAst(), **options)
    # ToAst reads the keyword set when it runs, so it can be filled in after construction
    set_anonymous_terminals({t.name for t in lark.terminals if t.pattern.type == "str"})
    return lark


def parse_policy(text: str, path: str = "<policy>") -> ast.PolicyFile:
    """Parse one policy file's text; raise PolicyError with located diagnostics."""
    lines = text.splitlines()
    size = len(text.encode("utf-8"))
    if size > MAX_FILE_BYTES:
        raise PolicyError(
            [
                Diagnostic(
                    "limit_exceeded",
                    f"the file is {size} bytes; a policy file may hold at most "
                    f"{MAX_FILE_BYTES} bytes (split it into several files)",
                    path,
                    1,
                    1,
                )
            ]
        )
    comments: list[Token] = []
    COMMENTS.comments = comments
    try:
        try:
            policy = _parse_fast(text)
        except (UnexpectedInput, _Unexpected):
            # Lark's own parser on the same tables raises the error the diagnostics expect
            # (with its interactive parser, for the examples in syntax_errors.py)
            del comments[:]
            policy = parser().parse(text)
    except UnexpectedInput as exc:
        raise PolicyError([_syntax_diagnostic(exc, text, lines, path)]) from None
    except BadValue as exc:
        diagnostic = _token_diagnostic("bad_value", exc.message, exc.token, path, lines)
        raise PolicyError([diagnostic]) from None
    finally:
        COMMENTS.comments = None
    assert isinstance(policy, ast.PolicyFile)
    _check_depth(policy, path, lines)
    header = policy.header
    if header.version not in LANGUAGE_VERSIONS:
        raise PolicyError(
            [
                _at(
                    "unsupported_version",
                    f"this file is written for language version {header.version}; this "
                    f"slotwise understands version {', '.join(map(str, LANGUAGE_VERSIONS))}",
                    path,
                    header.span,
                    lines,
                )
            ]
        )
    found = tuple(ast.Comment(c.line or 0, c.column or 0, str(c)) for c in comments)
    return ast.PolicyFile(path, policy.header, policy.items, found)


# the fused loop met a token the parse table has no action for
_Unexpected = reader.Unexpected

# per state: token type -> the next state (shift), or a reader.Reduce
_Action = int | reader.Reduce


@functools.cache
def _driver() -> tuple[reader.Lexicon, list[dict[str, _Action]], int, int]:
    """Lark's LALR tables flattened for ``_parse_fast`` (built once, after ``parser()``).

    The tables, the Shift marker, the rules and the reduce callbacks are Lark internals:
    tests/dsl/test_lark_internals.py pins their shape and the Lark version they were verified
    against, and checks that this loop builds what Lark's own parse builds.
    """
    lark = parser()
    frontend: Any = lark.parser  # ParsingFrontend -> LALR_Parser -> _Parser
    base = frontend.parser.parser
    table = base.parse_table
    callbacks = _lists_for_repeats(base.callbacks)
    states: dict[int, dict[str, _Action]] = {}
    for state, actions in table.states.items():
        flat: dict[str, _Action] = {}
        for kind, (action, arg) in actions.items():
            if action is Shift:
                flat[str(kind)] = arg
            else:
                callback = _unwrapped(callbacks[arg], arg)
                flat[str(kind)] = reader.Reduce(
                    len(arg.expansion),
                    None if callback is None else reader.reducer(callback),
                    str(arg.origin.name),
                )
        states[state] = flat
    start, end = table.start_states["start"], table.end_states["start"]
    # Lark numbers the states 0..n-1: a list indexes faster than a dict
    ordered = [states[number] for number in range(len(states))]
    return PolicyLexer.from_terminals(lark.terminals).lexicon, ordered, start, end


def _lists_for_repeats(callbacks: dict[Any, Any]) -> dict[Any, Any]:
    """Lark's callbacks with the repetitions (``x*``, ``("," x)*``) built as plain lists.

    Lark builds each repetition as a helper rule (``__rule_star_4``) whose value is a Tree,
    and every rule that holds one splices its children in (``ChildFilterLALR_NoPlaceholders``,
    where it is the one expanded child). Here the helper's value is the list itself and the
    holder splices it with one slice: the same children reach the same ToAst methods, with no
    Tree per repetition and no per-child loop. Any other shape (a helper read some other way,
    two expanded children) keeps Lark's callbacks as they are."""
    helpers = {rule.origin.name for rule in callbacks if rule.origin.name.startswith("__")}
    fast: dict[Any, Any] = {}
    for rule, callback in callbacks.items():
        symbols = [symbol.name for symbol in rule.expansion]
        expanded = [i for i, symbol in enumerate(symbols) if symbol in helpers]
        filtering = isinstance(callback, ChildFilterLALR_NoPlaceholders)
        if filtering and [i for i, e in callback.to_include if e] != expanded:
            return callbacks
        if filtering and [i for i, _ in callback.to_include] != list(range(len(symbols))):
            return callbacks
        if not filtering and expanded:
            return callbacks  # a helper read whole: Lark's own shapes
        if len(expanded) > 1:
            return callbacks  # two repetitions in one rule: the splice takes one
        if rule.origin.name in helpers:
            # `__x: item` starts the list; `__x: __x "," item` extends it (left recursion)
            if expanded not in ([], [0]):
                return callbacks
            fast[rule] = _extend if expanded else list
        elif expanded:
            fast[rule] = _splicer(expanded[0], callback.node_builder)
        else:
            fast[rule] = callback
    return fast


_extend = reader.Extend()


def _splicer(at: int, builder: Any) -> Any:
    if isinstance(builder, ExpandSingleChild):  # `?and_: not_ ("and" not_)*`
        return reader.Splice(at, reader.SingleOrBuild(reader.reducer(builder.node_builder)))
    return reader.Splice(at, reader.reducer(builder))


def _unwrapped(callback: Any, rule: Any) -> Any:
    """The reduce callback without Lark's ``ExpandSingleChild`` wrapper (a ``?rule``): None
    when the rule has one symbol, whose value is then the result (no call at all), else the
    wrapped builder, which the wrapper calls for more than one child."""
    if isinstance(callback, ExpandSingleChild):
        return None if len(rule.expansion) == 1 else callback.node_builder
    return callback


def _parse_fast(text: str) -> Any:
    """Lark's LALR loop (lalr_parser_state.feed_token) fused with the lexer, for the same
    tables and callbacks (``reader.parse``, compiled). With Lark's own loop (``Lark.parse``:
    per-token method calls, checks, Rule comparisons) the 10,000-rule bench workload parses in
    1.1-1.2x the time, about a tenth of that reload (docs/benchmarks.md, "Lark internals");
    tests/dsl/test_lark_internals.py pins the internals it reads to Lark's version. Any error
    is left to Lark (``parse_policy``).
    """
    lexicon, states, start, end = _driver()
    return reader.parse(lexicon, text, states, start, end, COMMENTS.comments)


def _conditions(policy: ast.PolicyFile) -> list[ast.Condition]:
    found: list[ast.Condition] = []
    for item in policy.items:
        if isinstance(item, ast.Segment):
            found.append(item.condition)
        elif isinstance(item, ast.Campaign):
            for member in item.members:
                if isinstance(member, ast.Applies | ast.Rule):
                    found.append(member.condition)
        elif isinstance(item, ast.Trigger | ast.Offers):
            for other in item.members:
                condition = getattr(other, "condition", None)
                if condition is not None:
                    found.append(condition)
    return found


def _check_depth(policy: ast.PolicyFile, path: str, lines: list[str]) -> None:
    # later stages walk conditions recursively: bound the nesting here, without recursion
    for condition in _conditions(policy):
        stack: list[tuple[ast.Condition, int]] = [(condition, 1)]
        while stack:
            node, depth = stack.pop()
            if depth > MAX_CONDITION_DEPTH:
                raise PolicyError(
                    [
                        _at(
                            "limit_exceeded",
                            f"this condition is nested more than {MAX_CONDITION_DEPTH} levels "
                            "deep (and/or/not/parentheses); name parts of it with segments",
                            path,
                            node.span,
                            lines,
                        )
                    ]
                )
            if isinstance(node, ast.And | ast.Or):
                stack.extend((child, depth + 1) for child in node.operands)
            elif isinstance(node, ast.Negation):
                stack.append((node.operand, depth + 1))


def _token_diagnostic(
    code: str, message: str, token: Token, path: str, lines: list[str]
) -> Diagnostic:
    line = token.line or 0
    return Diagnostic(
        code,
        message,
        path,
        line,
        token.column or 0,
        end_line=token.end_line or 0,
        end_column=token.end_column or 0,
        source_line=_line(lines, line),
    )


def _syntax_diagnostic(exc: UnexpectedInput, text: str, lines: list[str], path: str) -> Diagnostic:
    line = exc.line if isinstance(exc.line, int) and exc.line > 0 else max(1, len(lines))
    column = exc.column if isinstance(exc.column, int) and exc.column > 0 else 1
    label = _match_example(exc, text)
    if isinstance(exc, UnexpectedCharacters):
        position = exc.pos_in_stream or 0
        char = text[position] if position < len(text) else ""
        message = f"unexpected character {char!r}"
        hint = hint_for_character(char) or label or ""
        width = 1
    elif isinstance(exc, UnexpectedEOF):
        message = "the file ends too early"
        hint = label or "a block is not finished: look for a missing `}` or a missing value"
        expected = _expected({str(t) for t in exc.expected})
        if expected:
            message += f"; expected {expected}"
        width = 1
    elif isinstance(exc, UnexpectedToken):
        token = exc.token
        if token.type == "$END":
            message = "the file ends too early"
            width = 1
        else:
            message = f"unexpected {_token_text(token)}"
            width = max(1, len(str(token)))
        expected = _expected(exc.accepts or exc.expected)
        if expected:
            message += f"; expected {expected}"
        hint = label or ""
    else:  # pragma: no cover - lark has no other UnexpectedInput kinds
        message, hint, width = str(exc), label or "", 1
    if line == 1 and not text.lstrip().startswith("policy"):
        hint = hint or 'a policy file starts with a header: policy "name" version 1'
    code = "syntax_error" if _HEADER.match(text) else "bad_header"
    return Diagnostic(
        code,
        message,
        path,
        line,
        column,
        end_line=line,
        end_column=column + width,
        source_line=_line(lines, line),
        hint=hint,
    )


def _match_example(exc: UnexpectedInput, text: str) -> str | None:
    try:
        label = exc.match_examples(parser().parse, EXAMPLES, use_accepts=True)
    except Exception:  # a broken example must never hide the user's own error
        return None
    return label if isinstance(label, str) else None


def _expected(names: set[str] | frozenset[str] | None) -> str:
    if not names:
        return ""
    shown = sorted({describe_terminal(parser(), name) for name in names if name != "$END"})
    if len(shown) > 8:
        shown = shown[:8] + ["..."]
    return ", ".join(shown)


def _token_text(token: Token) -> str:
    value = str(token)
    if token.type in ("NAME", "SIGNAL", "NUMBER", "DURATION", "CLOCK"):
        return f"{value!r}"
    if token.type == "STRING":
        return f"string {value}"
    return f"{value!r}"


def _line(lines: list[str], line: int) -> str:
    return lines[line - 1] if 0 < line <= len(lines) else ""


def _at(code: str, message: str, path: str, span: ast.Span, lines: list[str]) -> Diagnostic:
    return Diagnostic(
        code,
        message,
        path,
        span.line,
        span.column,
        end_line=span.end_line,
        end_column=span.end_column,
        source_line=_line(lines, span.line),
    )
