"""The alpha-3 to alpha-2 country table is ISO 3166-1 (checked against iso-codes when present)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slotwise.plugins.builtin.countries import ALPHA2_BY_ALPHA3, alpha2

ISO_CODES = Path("/usr/share/iso-codes/json/iso_3166-1.json")


@pytest.mark.skipif(not ISO_CODES.exists(), reason="the iso-codes package is not installed")
def test_the_table_is_iso_3166_1() -> None:
    countries = json.loads(ISO_CODES.read_text())["3166-1"]
    expected = {c["alpha_3"]: c["alpha_2"] for c in countries}
    assert {k: v for k, v in ALPHA2_BY_ALPHA3.items() if k != "XKX"} == expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("DEU", "DE"),
        ("deu", "DE"),
        (" USA ", "US"),
        ("GBR", "GB"),
        ("AUT", "AT"),
        ("XKX", "XK"),
        ("DE", "DE"),
        ("gb", "GB"),
        ("UK", None),
        ("XYZ", None),
        ("", None),
        ("GERMANY", None),
    ],
)
def test_alpha2(code: str, expected: str | None) -> None:
    assert alpha2(code) == expected
