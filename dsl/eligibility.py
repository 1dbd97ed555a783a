"""The outcome of a campaign's rules for one request: :class:`Eligibility`.

Apart from ``slotwise.dsl.compiled`` (compiled with mypyc) because a compiled module cannot
define a ``msgspec.Struct``, and one ``Eligibility`` is built per campaign of every decision: a
frozen dataclass's generated ``__init__`` (``object.__setattr__`` per field, in Python even
when compiled) cost ~4,700 instructions; the Struct's is C. ``slotwise.dsl.compiled``
re-exports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from slotwise.dsl.compiled import SlotEligibility
    from slotwise.dsl.matcher import Match, TermIds


class Eligibility(msgspec.Struct, frozen=True):
    """The outcome of a campaign's rules for one request."""

    slots: Mapping[str, SlotEligibility]
    _matched: Match
    _rule_names: tuple[str, ...]
    _ids: TermIds

    def __getitem__(self, slot: str) -> SlotEligibility:
        return self.slots[slot]

    @property
    def matched_rules(self) -> tuple[str, ...]:
        """Names of the rules whose conditions held, in policy order."""
        names = self._rule_names
        return tuple(names[rule] for rule in self._ids.rules_of(self._matched))


__all__ = ["Eligibility"]
