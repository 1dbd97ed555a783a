"""Every diagnostic code is documented in the language reference and exercised by a case."""

from __future__ import annotations

import json
import re
from pathlib import Path

from slotwise.dsl.errors import CODES

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "docs" / "language-reference.md"
CONFORMANCE = Path(__file__).parent / "conformance"

# codes that need a file system situation rather than a policy text (tested in test_loader.py
# and test_cli.py)
# not_yet_served: every kind of block is served today (dsl/served.py; its test patches one in)
NOT_FROM_TEXT = {"unreadable_file", "no_policy_files", "not_yet_served"}


def test_every_code_is_in_the_reference() -> None:
    section = REFERENCE.read_text().split("## Diagnostics", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", section, re.MULTILINE))
    missing = sorted(set(CODES) - documented)
    assert not missing, f"add these codes to the table in {REFERENCE.name}: {missing}"
    unknown = sorted(documented - set(CODES))
    assert not unknown, f"the reference documents codes that do not exist: {unknown}"


def test_every_code_has_a_conformance_case() -> None:
    seen: set[str] = set()
    for path in CONFORMANCE.glob("*.json"):
        spec = json.loads(path.read_text())
        for key in ("errors", "warnings"):
            seen.update(code for code, _ in spec.get(key, []))
    missing = sorted(set(CODES) - seen - NOT_FROM_TEXT)
    assert not missing, f"add conformance cases for: {missing}"


def test_every_code_is_emitted_somewhere() -> None:
    sources = "\n".join(p.read_text() for p in (REPO / "dsl").glob("*.py"))
    for code in CODES:
        assert sources.count(f'"{code}"') >= 2, f"{code} is declared but never reported"
