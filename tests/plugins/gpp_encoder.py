"""Encode a GPP header (tests only): for section combinations no published string covers."""

from __future__ import annotations

from slotwise.plugins.builtin.gpp import _ALPHABET


def fibonacci(value: int) -> str:
    """``value`` (>= 1) Fibonacci-coded: bit i stands for F(i + 2), ended by an extra 1."""
    fibs = [1, 2]
    while fibs[-1] <= value:
        fibs.append(fibs[-1] + fibs[-2])
    bits = ["0"] * len(fibs)
    for i in range(len(fibs) - 1, -1, -1):
        if fibs[i] <= value:
            bits[i] = "1"
            value -= fibs[i]
    return "".join(bits).rstrip("0") + "1"


def header(*section_ids: int) -> str:
    """The GPP header naming ``section_ids`` (ascending), each as a single id."""
    bits = "000011" + "000001" + format(len(section_ids), "012b")
    last = 0
    for section_id in section_ids:
        bits += "0" + fibonacci(section_id - last)
        last = section_id
    bits += "0" * (-len(bits) % 6)
    return "".join(_ALPHABET[int(bits[i : i + 6], 2)] for i in range(0, len(bits), 6))
