"""The per-token and per-node work of parsing, in plain functions and classes mypyc compiles.

dsl/lexer.py and dsl/transform.py subclass Lark's ``Lexer`` and ``Transformer``, which mypyc
cannot compile (they are interpreted classes); they are thin shells around this module, which
holds what runs once per token (``Scanner``), once per reduction (``Node``; the rule builders
are dsl/rules.py's) and the fused LALR loop of ``parse`` (dsl/parser.py explains the loop and
the Lark internals it reads). slotwise/native.py lists this module; uncompiled it runs the
same code.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Final

from lark import Token
from lark.exceptions import UnexpectedCharacters

from slotwise.dsl import ast

_SPACES: Final = re.compile(r"[ \t\f\r]*")
_COMPARE: Final = frozenset({"==", "!=", "<=", ">=", "<", ">"})


class BadValue(Exception):
    """A token the grammar accepts but the language does not (a time of 25:00)."""

    def __init__(self, token: Any, message: str) -> None:
        # a Token or a Tok: both have line, column, end_line and end_column
        super().__init__(message)
        self.token = token
        self.message = message


class Unexpected(Exception):
    """The fused loop met a token the parse table has no action for."""


# ---------------------------------------------------------------- tokens


class Lexicon:
    """The lexer's tables: one regular expression (a named group per kind of token, the
    token's group ending the match), keywords and punctuation by text."""

    def __init__(self, pattern: re.Pattern[str], words: dict[str, str], symbols: dict[str, str]):
        self.pattern = pattern
        self.words = words
        self.symbols = symbols
        groups = pattern.groupindex
        # group numbers, not names, per token: an int comparison instead of a str one
        self.kinds = [""] * (pattern.groups + 1)
        for name, number in groups.items():
            self.kinds[number] = name
        self.newline = groups["NEWLINE"]
        self.comment = groups["COMMENT"]
        self.word = groups["WORD"]
        self.symbol = groups["SYMBOL"]
        self.end = groups["END"]


def make_token(kind: str, value: str, pos: int, line: int, column: int, end_pos: int) -> Token:
    # Token's constructor (argument juggling for old signatures) takes twice as long: parsing
    # the 10,000-rule bench workload took 1.1-1.2x the time with it (docs/benchmarks.md, "Lark
    # internals"). Filling the slots is a Lark internal: tests/dsl/test_lark_internals.py pins
    # it to Lark's version and checks the result equals what the constructor makes.
    token: Any = str.__new__(Token, value)
    token.type = kind
    token.value = value
    token.start_pos = pos
    token.line = line
    token.end_line = line
    token.column = column
    token.end_column = column + len(value)
    token.end_pos = end_pos
    return token  # type: ignore[no-any-return]


class Tok:
    """A token of the fused loop: what a Lark Token holds, in a compiled class (filling a
    Token's eight slots was a seventh of the parse). ``str()`` is its text, as a Token's is;
    the rule builders read either kind (Lark's own parser, the error path, gets Tokens)."""

    def __init__(
        self, kind: str, value: str, pos: int, line: int, column: int, end_pos: int
    ) -> None:
        self.type = kind
        self.value = value
        self.start_pos = pos
        self.line = line
        self.end_line = line
        self.column = column
        self.end_column = column + len(value)
        self.end_pos = end_pos

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"Tok({self.type!r}, {self.value!r})"


class Scanner:
    """Tokenises ``data`` while a parser consumes the tokens: ``states[stack[-1]]`` holds the
    token types the parser accepts now (``stack`` is its live state stack). Comments go to
    ``comments`` (the formatter's), when it is a list."""

    def __init__(
        self,
        lexicon: Lexicon,
        data: str,
        states: Mapping[int, Collection[str]] | Sequence[Collection[str]],
        stack: list[int],
        comments: list[Token] | None,
    ) -> None:
        self.lexicon = lexicon
        self.pattern = lexicon.pattern
        self.data = data
        self.states = states
        self.stack = stack
        self.comments = comments
        self.pos = 0
        self.line = 1
        self.line_start = 0
        self.end = len(data)
        # the token read last (``advance``)
        self.kind = ""
        self.value = ""
        self.start = 0
        self.column = 0

    def next(self) -> Token | None:
        """The next token (a Lark Token, for Lark's parser), or None at the end."""
        if not self.advance():
            return None
        return make_token(self.kind, self.value, self.start, self.line, self.column, self.pos)

    def advance(self) -> bool:
        """Read the next token into ``kind``, ``value``, ``start``, ``column`` (``line`` its
        line, ``pos`` its end); False at the end of the text."""
        data = self.data
        lexicon = self.lexicon
        while self.pos < self.end:
            found = self.pattern.match(data, self.pos)
            if found is None:
                pos = _SPACES.match(data, self.pos).end()  # type: ignore[union-attr]
                raise UnexpectedCharacters(  # type: ignore[no-untyped-call]
                    data, pos, self.line, pos - self.line_start + 1
                )
            group = found.lastindex or 0
            if group == lexicon.end:
                break
            value: str = found.group(group)
            next_pos = found.end()
            pos = next_pos - len(value)  # the token's group ends the match (spaces lead it)
            column = pos - self.line_start + 1
            self.pos = next_pos
            if group == lexicon.newline:
                self.line += 1
                self.line_start = next_pos
            elif group == lexicon.comment:
                sink = self.comments
                if sink is not None:
                    sink.append(make_token("COMMENT", value, pos, self.line, column, next_pos))
            else:
                if group == lexicon.word:
                    kind = lexicon.words.get(value, "NAME")
                    # a keyword where the grammar expects a name is a name (`variant offer`,
                    # `affinity(clicks: ...)`): keywords are reserved only where they matter
                    if kind != "NAME":
                        expected = self.states[self.stack[-1]]
                        if kind not in expected and "NAME" in expected:
                            kind = "NAME"
                elif group == lexicon.symbol:
                    kind = "COMPARE" if value in _COMPARE else lexicon.symbols[value]
                else:
                    kind = lexicon.kinds[group]
                self.kind = kind
                self.value = value
                self.start = pos
                self.column = column
                return True
        self.pos = self.end
        return False


# ---------------------------------------------------------------- reductions


class Reducer:
    """What a reduction builds from its children (a rule's value)."""

    def reduce(self, children: list[Any]) -> Any:
        raise NotImplementedError

    def __call__(self, children: list[Any]) -> Any:
        return self.reduce(children)


class Call(Reducer):
    """Any other callable Lark made for a rule (a shape dsl/parser.py does not flatten)."""

    def __init__(self, function: Callable[[list[Any]], Any]) -> None:
        self.function = function

    def reduce(self, children: list[Any]) -> Any:
        return self.function(children)


class StartList(Reducer):
    """`__x: item` of a repetition: the list starts with its item."""

    def reduce(self, children: list[Any]) -> Any:
        return children


class Extend(Reducer):
    """`__x: __x "," item` (left recursion): the item joins the list."""

    def reduce(self, children: list[Any]) -> Any:
        repeated: list[Any] = children[0]
        repeated += children[1:]
        return repeated


class Splice(Reducer):
    """A rule holding a repetition: its list spliced in where it stands, in one slice."""

    def __init__(self, at: int, builder: Reducer) -> None:
        self.at = at
        self.builder = builder

    def reduce(self, children: list[Any]) -> Any:
        at = self.at
        return self.builder.reduce(children[:at] + children[at] + children[at + 1 :])


class SingleOrBuild(Reducer):
    """A ?rule (Lark's ExpandSingleChild): its only child is its value, more are built."""

    def __init__(self, builder: Reducer) -> None:
        self.builder = builder

    def reduce(self, children: list[Any]) -> Any:
        if len(children) == 1:
            return children[0]
        return self.builder.reduce(children)


def reducer(callback: Any) -> Reducer:
    """``callback`` as a Reducer (``list`` starts a repetition)."""
    if isinstance(callback, Reducer):
        return callback
    if callback is list:
        return StartList()
    return Call(callback)


Builder = Callable[[ast.Span, list[Any]], Any]

# Rules written with `!` in the grammar: their keyword tokens are their value.
_KEEP_TOKENS: Final = frozenset(
    {
        "metric",
        "goal_op",
        "range_op",
        "quantifier",
        "arm_kind",
        "offer_verdict",
        "trigger_verdict",
        "offer_text",
    }
)
# Named string terminals: kept like any named terminal (anonymous keywords are dropped).
_NAMED: Final = frozenset({"NEG", "NOT"})
_ANONYMOUS: Final[set[str]] = set()
# Rules whose value carries no span (a str, a number, a tuple, a Percent, the file): their
# builders ignore it, so it is not computed (a third of the reductions of a large file).
_UNSPANNED: Final = frozenset(
    {
        "start",
        "offer_text",
        "attributes",
        "names",
        "goal",
        "metric",
        "goal_op",
        "arm_kind",
        "rec_block",
        "offer_verdict",
        "trigger_verdict",
        "atom",
        "quantifier",
        "range_op",
        "string",
        "true",
        "false",
        "literals",
        "number",
        "percent",
    }
)


def set_anonymous_terminals(names: set[str]) -> None:
    """Tell the rule builders which token types are grammar keywords/punctuation to drop."""
    _ANONYMOUS.clear()
    _ANONYMOUS.update(names - _NAMED)


class Node(Reducer):
    """One grammar rule's builder: the span from the raw children (every token is kept, Lark
    passes no positions to an inline transformer), then the keywords dropped."""

    def __init__(self, name: str, build: Builder) -> None:
        self.name = name
        self.keep = name in _KEEP_TOKENS
        self.spanned = name not in _UNSPANNED
        self.build = build

    def reduce(self, children: list[Any]) -> Any:
        span = _span(children) if self.spanned else ast.NO_SPAN
        if not self.keep:
            anonymous = _ANONYMOUS
            kept: list[Any] = []
            for child in children:
                if isinstance(child, Tok):
                    if child.type in anonymous:
                        continue
                elif type(child) is Token and child.type in anonymous:
                    continue
                kept.append(child)
            children = kept
        return self.build(span, children)


def _position(child: Any, first: bool) -> tuple[int, int] | None:
    if isinstance(child, Tok):
        return (child.line, child.column) if first else (child.end_line, child.end_column)
    if type(child) is Token:
        if first:
            return (child.line or 0, child.column or 0)
        return (child.end_line or 0, child.end_column or 0)
    span = getattr(child, "span", None)
    if span is not None and span.line:
        return (span.line, span.column) if first else (span.end_line, span.end_column)
    if isinstance(child, tuple) and child:
        return _position(child[0] if first else child[-1], first)
    return None


def _span(children: list[Any]) -> ast.Span:
    # the common case first: a rule that starts with a keyword token (kept by the parser)
    if not children:
        return ast.NO_SPAN
    first: Any = children[0]
    last: Any = children[-1]
    start: tuple[int, int] | None = None
    if isinstance(first, Tok):
        start = (first.line, first.column)
    elif type(first) is Token:
        start = (first.line or 0, first.column or 0)
    else:
        for child in children:
            start = _position(child, True)
            if start is not None:
                break
    end: tuple[int, int] | None = None
    if isinstance(last, Tok):
        end = (last.end_line, last.end_column)
    elif type(last) is Token:
        end = (last.end_line or 0, last.end_column or 0)
    else:
        for at in range(len(children) - 1, -1, -1):  # (reversed() stops mypyc here)
            end = _position(children[at], False)
            if end is not None:
                break
    if start is None or end is None:
        return ast.NO_SPAN
    return new_span(start[0], start[1], end[0], end[1])


_SPAN_FIELDS: Final = ("line", "column", "end_line", "end_column")
_FILLED: Final = tuple(f.name for f in dataclasses.fields(ast.Span)) == _SPAN_FIELDS
_set: Final = object.__setattr__


def new_span(line: int, column: int, end_line: int, end_column: int) -> ast.Span:
    # a Span per reduction: filling its four slots as its frozen dataclass __init__ does,
    # without that interpreted frame (a fifth of the 10,000-rule parse's instructions);
    # the constructor if Span's fields ever change (tests/dsl/test_reader.py)
    if not _FILLED:
        return ast.Span(line, column, end_line, end_column)
    span: ast.Span = object.__new__(ast.Span)
    _set(span, "line", line)
    _set(span, "column", column)
    _set(span, "end_line", end_line)
    _set(span, "end_column", end_column)
    return span


# ---------------------------------------------------------------- the fused loop


class Reduce:
    """A reduce action: pop ``size`` children, build with ``builder`` (None: a ?rule of one
    symbol, whose value is its only child), then go to the state for ``name``."""

    def __init__(self, size: int, builder: Reducer | None, name: str) -> None:
        self.size = size
        self.builder = builder
        self.name = name


def parse(
    lexicon: Lexicon,
    text: str,
    states: list[dict[str, Any]],
    start: int,
    end: int,
    comments: list[Token] | None,
) -> Any:
    """Lark's LALR loop (lalr_parser_state.feed_token) fused with the lexer; ``states[n]`` maps
    state n's token types to the next state (shift) or a Reduce. Raises Unexpected where
    the table has no action (dsl/parser.py then lets Lark's own parser say what is wrong)."""
    state_stack = [start]
    value_stack: list[Any] = []
    scanner = Scanner(lexicon, text, states, state_stack, comments)
    while True:
        token: Tok | None = None
        kind = "$END"
        if scanner.advance():
            kind = scanner.kind
            token = Tok(
                kind, scanner.value, scanner.start, scanner.line, scanner.column, scanner.pos
            )
        while True:
            action = states[state_stack[-1]].get(kind)
            if action is None:
                raise Unexpected
            if isinstance(action, int):
                if token is None:
                    raise Unexpected
                state_stack.append(action)
                value_stack.append(token)
                break
            step: Reduce = action
            builder = step.builder
            if builder is None:  # a ?rule of one symbol: its value is the result
                del state_stack[-1]
            else:
                size = step.size
                if size:
                    children = value_stack[-size:]
                    del state_stack[-size:]
                    del value_stack[-size:]
                else:
                    children = []
                value_stack.append(builder.reduce(children))
            state_stack.append(states[state_stack[-1]][step.name])
            if token is None and state_stack[-1] == end:
                return value_stack[-1]
