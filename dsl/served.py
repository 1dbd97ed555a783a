"""What the proxy serves of a policy today, and the ``not_yet_served`` check for the rest.

The language can be ahead of the runtime: a kind of block may parse, check, compile and run in
``slotwise test`` and ``slotwise explain`` before the proxy's personaliser for it
(slotwise.proxy.personalisers) acts on it. ``slotwise check`` then says so, once per block, as a
warning, so that nobody ships a policy expecting it to act. Today every kind is served:
campaigns, triggers (a campaign a trigger shows, while the trigger fires for the user), offer
sets, and recommendations and re-ranks (with a catalogue, ``catalogue.feed``). A kind the
language gains before the proxy serves it goes into ``NOT_YET_SERVED`` until it is.

One combination is not served either: a campaign whose slots take an offer set's text
(``slot ... from offers SET``), shown by a trigger. The trigger serves the campaign's variants;
its offer slots keep the ad's own text (the trigger's ``offer by`` ladder is the offer there).
Each such ``show campaign`` gets the warning too.
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
    found = _shown_offer_creatives(files, lines)
    for f in files:
        source = lines.get(f.path, ())
        for item in f.items:
            entry = NOT_YET_SERVED.get(type(item))
            if entry is None:
                continue
            keyword, action = entry
            found.append(
                _warning(
                    f.path, source, item.span, keyword,
                    f'{keyword} "{item.name}" is checked and runs in `slotwise test`, but the '
                    f"proxy does not {action} yet",
                    "keep it for testing; the proxy leaves these responses as they are",
                )
            )  # fmt: skip
    return found


def _shown_offer_creatives(
    files: Sequence[ast.PolicyFile], lines: Mapping[str, Sequence[str]]
) -> list[Diagnostic]:
    offer_slots = {
        item.name: [slot.name for slot in item.slots if slot.offers is not None]
        for f in files
        for item in f.items
        if isinstance(item, ast.Campaign)
    }
    found = []
    for f in files:
        source = lines.get(f.path, ())
        for item in f.items:
            if not isinstance(item, ast.Trigger):
                continue
            for member in item.members:
                if not isinstance(member, ast.Show):
                    continue
                names = offer_slots.get(member.campaign)
                if not names:
                    continue
                found.append(
                    _warning(
                        f.path, source, member.span, "show",
                        f'trigger "{item.name}" shows campaign "{member.campaign}": the proxy '
                        f"does not decide its offer slot{'s' if len(names) > 1 else ''} "
                        f"({', '.join(names)}) for a trigger yet, the ad keeps its own text there",
                        "make the trigger's offer with its `offer by` ladder, or show a "
                        "campaign without offer slots (docs/offers.md)",
                    )
                )  # fmt: skip
    return found


def _warning(
    path: str, source: Sequence[str], span: ast.Span, keyword: str, message: str, hint: str
) -> Diagnostic:
    """A ``not_yet_served`` warning with its caret under ``keyword`` at ``span``."""
    return Diagnostic(
        "not_yet_served",
        message,
        path,
        span.line,
        span.column,
        Severity.WARNING,
        span.line,
        span.column + len(keyword),
        source[span.line - 1] if 0 < span.line <= len(source) else "",
        hint=hint,
    )
