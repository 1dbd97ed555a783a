"""A fast lexer for the policy grammar: one compiled regular expression, keywords by table.

Lark's own lexer spends most of a large file's parse time on keyword resolution; this one
reads the terminals Lark derived from grammar.lark (so the grammar stays the single source of
truth for keywords and punctuation) and tokenises with one regex pass (the bench workload
parses in 1.6-1.8x the time with Lark's contextual lexer: docs/benchmarks.md, "Lark internals").
Like Lark's contextual lexer, it asks the parser what it expects next: a keyword where only a
name fits is read as a name, so marketers can call a variant `offer` or `new`.

A custom lexer class is public Lark API; what it reads of the parser's state is not: see
``PolicyLexer.lex`` and tests/dsl/test_lark_internals.py.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from lark import Token
from lark.exceptions import UnexpectedCharacters
from lark.lexer import Lexer

if TYPE_CHECKING:
    from lark.common import LexerConf
    from lark.lexer import TerminalDef

_SPACES = re.compile(r"[ \t\f\r]*")
_COMPARE = frozenset({"==", "!=", "<=", ">=", "<", ">"})
_PUNCTUATION = r"\.\.<|\.\.|==|!=|<=|>=|=>|[<>{}()\[\],:%*+\-=]"


class CommentSink(threading.local):
    """Where the lexer puts comments for the formatter (per thread, per parse)."""

    comments: list[Token] | None = None


COMMENTS = CommentSink()


class PolicyLexer(Lexer):
    """Tokenises policy text into the terminals of grammar.lark."""

    def __init__(self, lexer_conf: LexerConf) -> None:
        self._read_terminals(lexer_conf.terminals)

    @classmethod
    def from_terminals(cls, terminals: Iterable[TerminalDef]) -> PolicyLexer:
        """The lexer for these terminals (``Lark.terminals``), outside a Lark parser."""
        lexer = cls.__new__(cls)
        lexer._read_terminals(terminals)
        return lexer

    def _read_terminals(self, terminals: Iterable[TerminalDef]) -> None:
        words: dict[str, str] = {}
        symbols: dict[str, str] = {}
        for terminal in terminals:
            if terminal.pattern.type == "str":
                value = terminal.pattern.value
                (words if value[:1].isalpha() or value[:1] == "_" else symbols)[value] = (
                    terminal.name
                )
        self.words = words
        self.symbols = symbols
        self.pattern = re.compile(
            # spaces before a token are part of its match: one regex call per token
            r"""
            [ \t\f\r]*
            (?:(?P<NEWLINE>\n)
            |(?P<COMMENT>\#[^\n]*)
            |(?P<STRING>"(?:[^"\\\n]|\\.)*")
            |(?P<CLOCK>\d\d:\d\d)
            |(?P<DURATION>\d+[smhdw]\b)
            |(?P<NUMBER>\d+(?:\.\d+)?)
            |(?P<SIGNAL>[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)
            |(?P<WORD>[a-z_][a-z0-9_]*)
            |(?P<SYMBOL>"""
            + _PUNCTUATION
            + r""")
            |(?P<END>\Z))
            """,
            re.VERBOSE,
        )

    # Lark 1.3's interface 1: lex() receives Lark's ParserState as well as the text. Its
    # attributes are Lark internals, read here and nowhere else (pinned, with the version, by
    # tests/dsl/test_lark_internals.py); without them a keyword could not be read as a name.
    __future_interface__ = 1

    def lex(self, lexer_state: Any, parser_state: Any) -> Iterator[Token]:
        text = lexer_state.text  # a TextSlice of the whole text (a str before Lark 1.3)
        data: str = text if isinstance(text, str) else text.text
        states = parser_state.parse_conf.parse_table.states
        return self.tokens(data, states, parser_state.state_stack)

    def tokens(
        self, data: str, states: Mapping[int, Collection[str]], stack: list[int]
    ) -> Iterator[Token]:
        """The tokens of ``data``, read while a parser consumes them: ``states[stack[-1]]``
        holds the token types the parser accepts now (``stack`` is its live state stack)."""
        match = self.pattern.match
        words, symbols = self.words, self.symbols
        pos, line, line_start, end = 0, 1, 0, len(data)
        while pos < end:
            found = match(data, pos)
            if found is None:
                pos = _SPACES.match(data, pos).end()  # type: ignore[union-attr]
                raise UnexpectedCharacters(  # type: ignore[no-untyped-call]
                    data, pos, line, pos - line_start + 1
                )
            kind = found.lastgroup or ""
            next_pos = found.end()
            if kind == "END":
                break
            pos = found.start(kind)
            value = found.group(kind)
            column = pos - line_start + 1
            if kind == "NEWLINE":
                line += 1
                line_start = next_pos
            elif kind == "COMMENT":
                sink = COMMENTS.comments
                if sink is not None:
                    sink.append(
                        Token(
                            "COMMENT", value, pos, line, column, line, column + len(value), next_pos
                        )
                    )
            else:
                if kind == "WORD":
                    kind = words.get(value, "NAME")
                    # a keyword where the grammar expects a name is a name (`variant offer`,
                    # `affinity(clicks: ...)`): keywords are reserved only where they matter
                    if kind != "NAME":
                        expected = states[stack[-1]]
                        if kind not in expected and "NAME" in expected:
                            kind = "NAME"
                elif kind == "SYMBOL":
                    kind = "COMPARE" if value in _COMPARE else symbols[value]
                yield _token(kind, value, pos, line, column, next_pos)
            pos = next_pos


def _token(kind: str, value: str, pos: int, line: int, column: int, end_pos: int) -> Token:
    # Token's constructor (argument juggling for old signatures) takes twice as long: parsing
    # the 10,000-rule bench workload took 1.1-1.2x the time with it (docs/benchmarks.md, "Lark
    # internals"). Filling the slots is a Lark internal: tests/dsl/test_lark_internals.py pins
    # it to Lark's version and checks the result equals what the constructor makes.
    token = str.__new__(Token, value)
    token.type = kind
    token.value = value
    token.start_pos = pos
    token.line = token.end_line = line
    token.column = column
    token.end_column = column + len(value)
    token.end_pos = end_pos
    return token
