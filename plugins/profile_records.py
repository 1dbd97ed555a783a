"""The profile's and cart's records as msgspec decodes them (``profile_source`` re-exports them).

They live apart from ``profile_source`` because that module is compiled with mypyc
(slotwise/native.py) and msgspec misreads the annotations of a Struct defined in a compiled
module ("Expected `type`, got `int`"); this one stays pure Python.
"""

from __future__ import annotations

import msgspec


class Profile(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """What is known about a user: demographics, segments and visit count."""

    age: int | None = None
    gender: str | None = None
    segments: tuple[str, ...] = ()
    visits: int = 0
    first_seen: float | None = None


class _CompactProfile(Profile, array_like=True, frozen=True, forbid_unknown_fields=False):
    """A :class:`Profile` read from the compact form (fields by position; later ones ignored)."""


class Cart(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """The user's current cart: total value, item ids, number of units."""

    value: float = 0.0
    items: tuple[str, ...] = ()
    count: int | None = None

    @property
    def units(self) -> int:
        return self.count if self.count is not None else len(self.items)


class _Product(msgspec.Struct):
    product_id: str
    price: float | None = None
    quantity: int = 1


__all__ = ["Cart", "Profile", "_CompactProfile", "_Product"]
