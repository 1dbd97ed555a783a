"""Diagnostics: every problem found in a policy set, with a stable code and a location.

A ``Diagnostic`` renders the way compilers do::

    policies/spring.sw:12:7: error: unknown_signal: unknown signal "geo.contry" (did you mean ...)
        when geo.contry == "DE"
             ^^^^^^^^^^

``PolicyError`` carries every diagnostic of a run (sorted by location) when a policy set cannot
be loaded. Codes are stable: tools and tests match on them, and docs/language-reference.md
documents each one (a test fails when one is missing there). ``POLICY`` is the language's area
in slotwise's error index (slotwise.errors): its errors end a command with exit code 1.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from slotwise.errors import EXIT_FAILED, Area, SlotwiseError


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


# code -> one-line meaning. The reference documents each; keep them stable.
CODES: Mapping[str, str] = {
    "syntax_error": "the text does not follow the grammar",
    "bad_header": 'the file does not start with a valid `policy "name" version 1` header',
    "unsupported_version": "the file's language version is not one this slotwise understands",
    "unknown_signal": "a condition names a signal no provider declares",
    "type_mismatch": "a value or operator does not fit the signal's type",
    "unknown_value": "a string compared with a signal outside its declared set of values",
    "unknown_event": "an event name that is not one of the behavioural event types",
    "unknown_variant": "an action or test names a variant the slot does not have",
    "unknown_slot": "an action or test names a slot the campaign does not have",
    "unknown_campaign": "a trigger or test names a campaign that does not exist",
    "unknown_segment": "a condition names a segment that does not exist",
    "unknown_offers": "a test or a campaign slot names an offer set that does not exist",
    "unknown_trigger": "a test names a trigger that does not exist",
    "segment_cycle": "segments refer to each other in a circle",
    "empty_range": "a range or list that no value can satisfy",
    "inverted_range": "a range whose low end is above its high end",
    "duplicate_name": "two things of the same kind share a name in the policy set",
    "duplicate_setting": "a block sets the same thing twice (two `holdout`s, two `applies when`s)",
    "missing_setting": "a block lacks something it needs (a campaign without slots, a trigger "
    "without `on event`)",
    "never_fires": "a rule whose condition can never be true",
    "contradictory_pins": "two rules pin different variants of one slot under conditions that can "
    "both hold",
    "contested_location": "two personalisations write the same slot location and can apply to "
    "the same response; the one first in precedence wins",
    "bad_location": "a slot location string that is not a valid JSON path, native: or vast: "
    "location",
    "offer_location": "an offer goes where it cannot: a campaign slot taking an offer at a "
    "location that holds no text (an image, a video, a link), or an offer set's `slot at` that "
    "is not a JSON path",
    "bad_value": "a number, percentage, duration or time outside what the construct accepts",
    "limit_exceeded": "a file or policy set is larger or deeper than the limits allow",
    "unreadable_file": "a policy file that cannot be read or is not UTF-8",
    "no_policy_files": "a path that holds no .sw files",
    "not_yet_served": "a block (or a trigger's `show campaign` of a campaign with offer slots) "
    "that is checked and tested, but that the proxy does not act on yet",
}
POLICY: Final = Area(
    "policy", "Policy language", CODES, docs="language-reference.md", exit_code=EXIT_FAILED
)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem: what (code + message), where (file, line, column, end) and how bad."""

    code: str
    message: str
    file: str
    line: int
    column: int
    severity: Severity = Severity.ERROR
    end_line: int = 0
    end_column: int = 0
    source_line: str = ""
    hint: str = ""

    @property
    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.file, self.line, self.column, self.code)

    def render(self) -> str:
        """``file:line:col: severity: code: message``, then the source line and a caret."""
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        text = f"{where}: {self.severity.value}: {self.code}: {self.message}"
        if self.source_line and self.line:
            shown = self.source_line.rstrip("\n").expandtabs(1)
            width = 1
            if self.end_line == self.line and self.end_column > self.column:
                width = self.end_column - self.column
            width = max(1, min(width, len(shown) - self.column + 1))
            text += f"\n    {shown}\n    {' ' * (self.column - 1)}{'^' * width}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text

    def to_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "hint": self.hint,
        }


def sorted_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Sorted by file and position, duplicates (same code at the same place) removed."""
    seen: set[tuple[str, int, int, str, str]] = set()
    result = []
    for diag in sorted(diagnostics, key=lambda d: d.sort_key):
        key = (diag.file, diag.line, diag.column, diag.code, diag.message)
        if key not in seen:
            seen.add(key)
            result.append(diag)
    return result


class PolicyError(SlotwiseError):
    """A policy set that cannot be loaded; ``diagnostics`` lists every problem found.

    ``code`` is the first error's (``syntax_error`` when there is none, which loaders avoid).
    """

    area = POLICY

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics = tuple(sorted_diagnostics(diagnostics))
        errors = [d for d in self.diagnostics if d.severity is Severity.ERROR]
        first = errors[0] if errors else (self.diagnostics[0] if self.diagnostics else None)
        summary = first.render().splitlines()[0] if first else "invalid policy set"
        more = len(errors) - 1
        super().__init__(
            summary + (f" (and {more} more)" if more > 0 else ""),
            code=first.code if first else "syntax_error",
        )

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity is Severity.ERROR)

    def render(self) -> str:
        return "\n".join(d.render() for d in self.diagnostics)

    def for_command(self, prefix: str) -> str:
        # each diagnostic starts with its own file:line:col, as compilers print them
        return self.render()
