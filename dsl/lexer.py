"""A fast lexer for the policy grammar: one compiled regular expression, keywords by table.

Lark's own lexer spends most of a large file's parse time on keyword resolution; this one
reads the terminals Lark derived from grammar.lark (so the grammar stays the single source of
truth for keywords and punctuation) and tokenises with one regex pass (the bench workload
parses in 1.6-1.8x the time with Lark's contextual lexer: docs/benchmarks.md, "Lark internals").
Like Lark's contextual lexer, it asks the parser what it expects next: a keyword where only a
name fits is read as a name, so marketers can call a variant `offer` or `new`.

A custom lexer class is public Lark API; what it reads of the parser's state is not: see
``PolicyLexer.lex`` and tests/dsl/test_lark_internals.py. The per-token loop is
``Scanner.next`` in dsl/reader.py, which mypyc compiles (this class subclasses Lark's).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from lark import Token
from lark.lexer import Lexer

from slotwise.dsl.reader import Lexicon, Scanner, make_token

if TYPE_CHECKING:
    from lark.common import LexerConf
    from lark.lexer import TerminalDef

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
        self.pattern: re.Pattern[str] = re.compile(
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
        self.lexicon = Lexicon(self.pattern, words, symbols)

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
        scanner = Scanner(self.lexicon, data, states, stack, COMMENTS.comments)
        token = scanner.next()
        while token is not None:
            yield token
            token = scanner.next()


_token = make_token  # the slot-filling shortcut (tests/dsl/test_lark_internals.py pins it)
