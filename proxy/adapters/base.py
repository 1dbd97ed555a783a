"""What every response adapter offers the decision: ad units with slots, signals and trackers.

A parsed response holds one or more :class:`AdUnit` (a generic JSON document is one unit; an
OpenRTB response has one per bid; a VAST document one per ``<Ad>``). A unit exposes the
``ad.*`` signals campaign selectors read, reads and writes slot values addressed by a
:class:`~slotwise.dsl.location.Location`, and adds the proxy's trackers in the format's own
fields. ``serialize`` turns the (possibly rewritten) document back into bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import msgspec

from slotwise.dsl.location import Location
from slotwise.types import SignalValue


class AdapterError(ValueError):
    """The body is not a valid document of the format its content type announced."""


class Trackers(msgspec.Struct, frozen=True):
    """The proxy's tracking URLs for one decision (see slotwise.proxy.tracking).

    A frozen Struct, not a frozen dataclass: one is built per decision, and a dataclass's
    generated ``__init__`` (``object.__setattr__`` per field, in Python) cost ~6,000
    instructions of the ~9,900 of ``ClickSigner.trackers``; the Struct's is C."""

    decision_id: str
    impression: str  # pixel fired when the ad is shown
    click: str  # pixel fired on click (tracker fields that do not redirect)
    click_redirect_base: str  # signed redirect: append the target with ``redirect(target)``
    signer: ClickSigner


class ClickSigner(Protocol):
    def redirect(self, decision_id: str, target: str) -> str:
        """A signed /_sw/click URL that redirects to ``target`` only."""
        ...


class AdUnit(Protocol):
    """One ad inside a response."""

    @property
    def signals(self) -> Mapping[str, SignalValue]:
        """``ad.format`` and, when the response says, ``ad.campaign_id``, ``ad.creative_id``,
        ``ad.placement``."""
        ...

    def read(self, location: Location) -> str | None:
        """The slot's current text, or None when this unit has no such slot."""
        ...

    def write(self, location: Location, value: str) -> bool:
        """Replace the slot's text; False when the slot is missing (nothing changed)."""
        ...

    def track(self, trackers: Trackers) -> None:
        """Add the decision's trackers in the format's own tracker fields."""
        ...


class Document(Protocol):
    """A parsed upstream response body."""

    @property
    def format(self) -> str: ...

    @property
    def units(self) -> Sequence[AdUnit]: ...

    def serialize(self) -> bytes:
        """The document as bytes, with every write and tracker applied."""
        ...
