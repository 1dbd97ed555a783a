"""Errors raised while discovering, configuring and starting signal providers.

Every error carries a stable ``code`` and names the provider (or entry point) it is about, so
an operator can fix the configuration without reading a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from slotwise.errors import PLUGINS, SlotwiseError


@dataclass(frozen=True, slots=True)
class PluginProblem:
    """One thing wrong with a provider: a stable code, the provider's name and what to do."""

    code: str
    provider: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: provider {self.provider!r}: {self.message}"


class PluginError(SlotwiseError):
    """Providers could not be loaded; ``problems`` lists every one found, not only the first.

    ``code`` is the first problem's (slotwise.errors.PLUGINS lists them all).
    """

    area = PLUGINS

    def __init__(self, problems: Sequence[PluginProblem]) -> None:
        self.problems = tuple(problems)
        first = self.problems[0].code if self.problems else "unknown_provider"
        super().__init__("\n".join(str(p) for p in self.problems), code=first)

    def render(self) -> str:
        return self.message  # each problem carries its code and provider

    def for_command(self, prefix: str) -> str:
        return "\n".join(f"{prefix}: {problem}" for problem in self.problems)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(p.code for p in self.problems)
