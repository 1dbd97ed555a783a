"""Encode a TCF v2 core segment (tests only): to build cases no published string covers."""

from __future__ import annotations

import base64
from collections.abc import Iterable


class _Writer:
    def __init__(self) -> None:
        self.bits: list[str] = []

    def uint(self, value: int, width: int) -> None:
        self.bits.append(format(value, f"0{width}b"))

    def flag(self, value: bool) -> None:
        self.uint(int(value), 1)

    def set(self, ids: Iterable[int], width: int) -> None:
        chosen = set(ids)
        self.bits.append("".join("1" if i in chosen else "0" for i in range(1, width + 1)))

    def letters(self, text: str) -> None:
        for char in text:
            self.uint(ord(char) - ord("A"), 6)

    def ranges(self, ids: Iterable[int]) -> None:
        ordered = sorted(set(ids))
        runs: list[tuple[int, int]] = []
        for vendor in ordered:
            if runs and runs[-1][1] == vendor - 1:
                runs[-1] = (runs[-1][0], vendor)
            else:
                runs.append((vendor, vendor))
        self.uint(len(runs), 12)
        for start, end in runs:
            self.flag(start != end)
            self.uint(start, 16)
            if start != end:
                self.uint(end, 16)

    def encoded(self) -> str:
        text = "".join(self.bits)
        text += "0" * (-len(text) % 8)
        raw = int(text, 2).to_bytes(len(text) // 8, "big")
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def encode_core(
    *,
    updated: float,
    vendors: Iterable[int],
    purposes: Iterable[int],
    range_encoding: bool = False,
    restrictions: Iterable[tuple[int, int, Iterable[int]]] = (),
    cmp_id: int = 7,
) -> str:
    """A core segment consenting ``purposes`` for ``vendors``, with publisher restrictions."""
    w = _Writer()
    vendor_ids = sorted(set(vendors))
    w.uint(2, 6)
    w.uint(round(updated * 10), 36)  # created
    w.uint(round(updated * 10), 36)  # last updated
    w.uint(cmp_id, 12)
    w.uint(1, 12)  # cmp version
    w.uint(1, 6)  # consent screen
    w.letters("EN")
    w.uint(100, 12)  # vendor list version
    w.uint(4, 6)  # policy version
    w.flag(True)  # service specific
    w.flag(False)
    w.set((), 12)  # special features
    w.set(purposes, 24)
    w.set((), 24)  # purposes LI
    w.flag(False)
    w.letters("DE")
    max_vendor = vendor_ids[-1] if vendor_ids else 0
    w.uint(max_vendor, 16)
    w.flag(range_encoding)
    if range_encoding:
        w.ranges(vendor_ids)
    else:
        w.set(vendor_ids, max_vendor)
    w.uint(0, 16)  # no legitimate-interest vendors
    w.flag(False)
    restrictions = list(restrictions)
    w.uint(len(restrictions), 12)
    for purpose, kind, restricted in restrictions:
        w.uint(purpose, 6)
        w.uint(kind, 2)
        w.ranges(restricted)
    return w.encoded()
