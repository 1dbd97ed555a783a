"""Lark parse tree to the frozen syntax tree of dsl/ast.py: one builder per grammar rule.

The builders are dsl/rules.py's (compiled with mypyc, which cannot compile a subclass of
Lark's interpreted ``Transformer``): ToAst answers each rule name with its ``reader.Node``,
so Lark's parser (the error path) and the fused loop of dsl/parser.py build alike.
"""

from __future__ import annotations

from typing import Any

from lark import Token, Transformer

from slotwise.dsl import rules
from slotwise.dsl.reader import BadValue, set_anonymous_terminals

__all__ = ["BadValue", "ToAst", "set_anonymous_terminals"]


class ToAst(Transformer[Token, Any]):
    """Builds ``ast.PolicyFile`` (path left empty) while the LALR parser reduces; stateless."""

    def __init__(self) -> None:
        super().__init__(visit_tokens=False)


# Lark looks a rule's callback up by name on the transformer: a Node is called with the
# rule's children (the span from the raw children, then the keywords dropped).
for _name, _node in rules.nodes().items():
    setattr(ToAst, _name, _node)
