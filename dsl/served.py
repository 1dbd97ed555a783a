"""What the proxy serves of a policy today, and the ``not_yet_served`` check for the rest.

The language can be ahead of the runtime: a kind of block may parse, check, compile and run in
``slotwise test`` and ``slotwise explain`` before the proxy's personaliser for it
(slotwise.proxy.personalisers) acts on it. ``slotwise check`` then says so, once per block, as a
warning, so that nobody ships a policy expecting it to act. Today every kind is served:
campaigns, triggers (a campaign a trigger shows, while the trigger fires for the user), offer
sets, and recommendations and re-ranks (with a catalogue, ``catalogue.feed``). A kind the
language gains before the proxy serves it goes into ``NOT_YET_SERVED`` until it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from slotwise.dsl import ast
from slotwise.dsl.errors import Diagnostic, Severity

# block type -> (its keyword, what the proxy would do with it)
NOT_YET_SERVED: Final[Mapping[type, tuple[str, str]]] = {}


def not_yet_served(
    files: Sequence[ast.PolicyFile], lines: Mapping[str, Sequence[str]]
) -> list[Diagnostic]:
    """A ``not_yet_served`` warning on each block the proxy does not act on yet."""
    found = []
    for f in files:
        source = lines.get(f.path, ())
        for item in f.items:
            entry = NOT_YET_SERVED.get(type(item))
            if entry is None:
                continue
            keyword, action = entry
            span = item.span
            found.append(
                Diagnostic(
                    "not_yet_served",
                    f'{keyword} "{item.name}" is checked and runs in `slotwise test`, but the '
                    f"proxy does not {action} yet",
                    f.path,
                    span.line,
                    span.column,
                    Severity.WARNING,
                    span.line,
                    span.column + len(keyword),
                    source[span.line - 1] if 0 < span.line <= len(source) else "",
                    hint="keep it for testing; the proxy leaves these responses as they are",
                )
            )
    return found
