from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from slotwise.dsl.compiled import CompiledPolicySet
from slotwise.dsl.loader import compile_sources
from slotwise.dsl.schema_file import builtin_schema
from slotwise.plugins.schema import SignalSchema

HEADER = 'policy "t" version 1\n'


@pytest.fixture(scope="session")
def schema() -> SignalSchema:
    return builtin_schema()


@pytest.fixture
def compile_text(schema: SignalSchema) -> Callable[[str], CompiledPolicySet]:
    """Compile one policy text (the header is added when missing)."""

    def build(text: str) -> CompiledPolicySet:
        if not text.lstrip().startswith("policy"):
            text = HEADER + text
        policy, _ = compile_sources([("t.sw", text)], schema)
        return policy

    return build


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    def put(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return put
