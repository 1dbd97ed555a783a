"""What the proxy serves of a policy today, and the ``not_yet_served`` check for the rest.

The language is ahead of the runtime: triggers and offer sets parse, check, compile and run in
``slotwise test`` and ``slotwise explain``, but the proxy's personalisers for them
(slotwise.proxy.personalisers: triggered campaigns, offers) are still empty steps. ``slotwise
check`` says so, once per block, as a warning, so that nobody ships a policy expecting it to
act. Campaigns are served (a campaign a trigger shows too, by its own ``applies when``), and
so are recommendations and re-ranks (with a catalogue, ``catalogue.feed``). When a step is
built, its kind leaves ``NOT_YET_SERVED``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from slotwise.dsl import ast
from slotwise.dsl.errors import Diagnostic, Severity

# block type -> (its keyword, what the proxy would do with it)
NOT_YET_SERVED: Final[Mapping[type, tuple[str, str]]] = {
    ast.Trigger: ("trigger", "arm it on events, show its campaign with its offer, or notify"),
    ast.Offers: ("offers", "choose or write its offer"),
}


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
