"""When to gather a request's signals: while the upstream answers, after it, or not at all.

Gathering while the upstream fetch is in flight hides the providers' time behind the
upstream's: what a personalised response wants. For a response no campaign applies to, the same
work is wasted, and in front of a whole ad server or storefront that is most responses (other
placements, other campaigns, pages without slots). When every campaign selects on the response
alone (its ``applies when`` reads only ``ad.*``), whether signals are needed is known once the
response is there. So the proxy remembers the request paths whose last response no campaign
applied to: those skip the early gather, and gather after the response only if a campaign does
apply to it this time (that one answer waits for the providers; none is answered wrongly). The
path is then forgotten, so its next requests gather early again.

A policy whose selectors read provider signals (``device.type``, behaviour) always gathers
early: nothing is known before the signals. A new policy set starts with nothing remembered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledPolicySet

QUIET_PATHS_LIMIT = 4096  # bounded: paths come from clients; forgetting only costs a gather


class EarlySignals:
    """Per request path, whether to gather signals while the upstream answers.

    Touched only from the event loop's thread, one request step at a time; a forgotten or
    raced entry costs one early gather, never a wrong response.
    """

    def __init__(self, limit: int = QUIET_PATHS_LIMIT) -> None:
        self._limit = limit
        self._policy: CompiledPolicySet | None = None
        self._on_response = False
        self._quiet: set[str] = set()

    def wanted(self, policy: CompiledPolicySet, path: str) -> bool:
        """Gather this request's signals while the upstream answers?"""
        if policy is not self._policy:
            self._policy = policy
            self._on_response = policy.selects_on_response
            self._quiet = set()
        return not self._on_response or path not in self._quiet

    def observe(self, path: str, *, applied: bool) -> None:
        """Whether a campaign applied to the response of a request for ``path``."""
        if applied:
            self._quiet.discard(path)
            return
        if len(self._quiet) >= self._limit:
            self._quiet = set()
        self._quiet.add(path)
