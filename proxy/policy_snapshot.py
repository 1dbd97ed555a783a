"""The current compiled policy set, swapped by reference when the files change.

The request path reads ``snapshot.current`` once per request: one attribute read, no lock.
The control plane (a task in the app lifespan) polls the policy directory's file signatures
(name, size, mtime) and, when they change, compiles the files beside the running set and swaps
the reference. A set that fails to compile is reported and the previous one keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slotwise.proxy.metrics import ProxyMetrics
from slotwise.types import SignalSchema

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledPolicySet

log = logging.getLogger("slotwise.proxy")
Signature = tuple[tuple[str, int, int], ...]


def policy_files(directory: Path) -> list[Path]:
    """The policy files of a directory (``*.sw``, recursively, sorted)."""
    return sorted(p for p in directory.rglob("*.sw") if p.is_file())


def _signature(directory: Path) -> Signature:
    out = []
    for path in policy_files(directory):
        stat = path.stat()
        out.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(out)


def compile_directory(directory: Path, schema: SignalSchema) -> CompiledPolicySet:
    """Compile every policy file of ``directory``; raises slotwise.dsl.errors.PolicyError."""
    from slotwise.dsl.compiled import CompiledPolicySet
    from slotwise.dsl.loader import load_policy_set  # control plane only: imports the parser

    files = policy_files(directory)
    if not files:  # no policies yet: a plain pass-through proxy
        return CompiledPolicySet(version="empty", campaigns=())
    policy_set: CompiledPolicySet = load_policy_set(files, schema)
    return policy_set


class PolicySnapshot:
    """Holds the serving policy set; ``current`` is None before the first successful load."""

    def __init__(
        self,
        directory: Path | None,
        schema: SignalSchema,
        metrics: ProxyMetrics,
        compile: Callable[[Path, SignalSchema], CompiledPolicySet] = compile_directory,
    ) -> None:
        self.directory = directory
        self.schema = schema
        self.current: CompiledPolicySet | None = None
        self.last_error: str | None = None
        self.on_swap: list[Callable[[CompiledPolicySet], Any]] = []
        self._metrics = metrics
        self._compile = compile
        self._signature: Signature = ()

    def install(self, policy_set: CompiledPolicySet) -> None:
        """Serve ``policy_set`` from the next request on."""
        self.current = policy_set
        for hook in self.on_swap:
            hook(policy_set)

    def load(self) -> bool:
        """(Re)compile the directory; True when a new set was installed."""
        policy_set = self.compile()
        if policy_set is None:
            return False
        self.install(policy_set)
        return True

    def compile(self) -> CompiledPolicySet | None:
        """Compile the directory (thread-safe: installs nothing); None when it fails."""
        if self.directory is None:
            return None
        signature = _signature(self.directory)
        try:
            policy_set = self._compile(self.directory, self.schema)
        except Exception as exc:  # PolicyError, or a compiler bug: keep serving the old set
            self.last_error = str(exc)
            self._signature = signature
            self._metrics.policy_reloads.inc("error")
            log.error(
                "policies in %s not loaded, keeping the previous set: %s", self.directory, exc
            )
            return None
        self._signature = signature
        self.last_error = None
        self._metrics.policy_reloads.inc("ok")
        return policy_set

    def changed(self) -> bool:
        return self.directory is not None and _signature(self.directory) != self._signature

    async def watch(self, interval: float) -> None:
        """Poll for changes every ``interval`` seconds, forever (run as a lifespan task)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            try:
                if await loop.run_in_executor(None, self.changed):
                    policy_set = await loop.run_in_executor(None, self.compile)
                    if policy_set is not None:
                        self.install(policy_set)  # on the loop: hooks see one consistent swap
            except OSError as exc:
                log.error("cannot read policy directory %s: %s", self.directory, exc)
