"""The request path's modules compiled with mypyc, and the guard that never runs a stale one.

``scripts/build_native.py`` (run by ``scripts/bootstrap`` and ``make``) compiles ``MODULES`` in
place when a C compiler and Python's headers are present, and records each source's hash in
``MANIFEST``. At ``import slotwise``, ``install()`` compares the sources with the manifest: when
``SLOTWISE_PURE=1`` is set, when the build did not happen or failed, or when any listed source
changed since the build, every listed module is loaded from its ``.py`` (all of them: compiled
modules call each other's native code directly, so one module loaded from source beside
compiled callers would still leave them running the old code). docs/operations.md, "The request
path compiled with mypyc", explains.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

# Module -> why it is compiled (its share of row (g)'s request path, docs/benchmarks.md). A
# module defining a msgspec Struct cannot be listed: msgspec misreads a compiled Struct's
# annotations (so the Structs of listed modules live in pure ones: plugins/profile_records.py,
# plugins/builtin/configs.py, proxy/decision_records.py, proxy/decision_stored.py). The last 15
# were added together (2026-12-06 afternoon): providers 3.2% of (g)'s instructions, the decision
# record 2.7%, caps/adapters/metrics 2.1%, Exchange/admission/early signals 3.3%; proxy/app.py
# measured 0.2% and is not listed. The six dsl modules marked "reload" are the policy loader's
# (parse, check, compile: issue 22's 10,000-rule build), not the request path's.
# plugins.metrics and plugins.loaded_provider (2026-12-06 evening): gather bumps three counters
# and reads several fields per provider per request, Python attribute calls while the classes
# were interpreted. LoadedProvider has its own module: plugins.loaded's ProviderSet stays
# interpreted (its tests set its timeouts on the class, which a compiled class refuses).
MODULES: dict[str, str] = {
    "slotwise.plugins.gather": "runs the signal providers and validates their signals per request",
    "slotwise.plugins.request": "builds every request's RequestInfo (headers, query, cookies)",
    "slotwise.plugins.profile_source": "rebuilds the profile and history snapshot per request",
    "slotwise.plugins.metrics": "every provider's counters, bumped per provider per request",
    "slotwise.plugins.loaded_provider": "the provider fields gather reads per provider per request",
    "slotwise.plugins.decision_inputs": "the request's subject and each ad unit's decision context",
    "slotwise.proxy.decide": "the personalised request's decision, end to end",
    "slotwise.proxy.entry": "what the ASGI server calls per request, before decide or forward",
    "slotwise.proxy.forward": "a request no policy could apply to, forwarded without an exchange",
    "slotwise.proxy.personalisers.campaigns": "eligibility, choice and units per campaign",
    "slotwise.proxy.chooser": "the rule chooser's pick per slot",
    "slotwise.proxy.tracking": "signs a tracking link per unit",
    "slotwise.dsl.compiled": "the compiled policy set read on every decision",
    "slotwise.dsl.matcher": "the rule index's eligible() per request",
    "slotwise.dsl.reader": "the policy parser's per-token and per-rule work (reload, not requests)",
    "slotwise.dsl.rules": "the policy parser's builder per grammar rule (reload, not requests)",
    "slotwise.dsl.check": "the policy checker (reload, not requests)",
    "slotwise.dsl.compile": "the policy compiler (reload, not requests)",
    "slotwise.dsl.conditions": "condition atoms and features, read by check and compile (reload)",
    "slotwise.dsl.satisfiable": "which rules can hold, per rule (reload, not requests)",
    "slotwise.proxy.adapters.json": "parses and rewrites the upstream's JSON answer",
    "slotwise.proxy.http_hygiene": "every request's and answer's header checks",
    "slotwise.proxy.http_body": "reads every request and answer body",
    "slotwise.proxy.upstream.connection": "the upstream connection's parser callbacks",
    "slotwise.proxy.upstream.pool": "every upstream exchange's acquire, write and retry",
    "slotwise.proxy.state.memory": "the memory store's reads and writes per request",
    "slotwise.plugins.builtin.consent": "the consent level of every request",
    "slotwise.plugins.builtin.request": "the request provider's signals per request",
    "slotwise.plugins.builtin.device": "the device provider's signals per request",
    "slotwise.plugins.builtin.geo": "the geo provider's signals per request",
    "slotwise.plugins.builtin.clock": "the time provider's signals per request",
    "slotwise.plugins.builtin.profile": "the profile provider's read per personal request",
    "slotwise.proxy.decision_log": "builds the decision record per decision",
    "slotwise.proxy.decision_codec": "encodes the decision record per decision",
    "slotwise.proxy.events.decisions": "queues the decision record per decision",
    "slotwise.proxy.caps": "the frequency caps' counter keys per personal request",
    "slotwise.proxy.adapters.parse": "picks the adapter of every upstream answer",
    "slotwise.proxy.metrics": "the counters and histograms every request updates",
    "slotwise.proxy.exchange": "one Exchange per request, read and written all along it",
    "slotwise.proxy.admission": "every request's admission and overload accounting",
    "slotwise.proxy.early_signals": "whether to gather while the upstream answers, per request",
    "slotwise.proxy.bandit.engine": "the bandit chooser's choice per campaign and slot",
    "slotwise.proxy.bandit.features": "the bandit's usable signals per request",
    "slotwise.proxy.bandit.holdout": "the bandit's holdout draw per request",
}

PACKAGE = Path(__file__).parent  # its dsl/, proxy/, plugins/ link to the checkout's folders
MANIFEST = PACKAGE / "native-build.manifest"

# What install() decided: "compiled", or "pure: <why>".
_state = "pure: not checked"


def source_of(module: str) -> Path:
    """The ``.py`` file of a listed module (``slotwise.proxy.decide`` -> proxy/decide.py)."""
    return PACKAGE.joinpath(*module.split(".")[1:]).with_suffix(".py")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_manifest() -> dict[str, Any] | None:
    try:
        loaded = json.loads(MANIFEST.read_text())
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def stale_modules(manifest: dict[str, Any]) -> list[str]:
    """The listed modules whose source differs from what the build compiled."""
    built = manifest.get("modules", {})
    stale = []
    for module in MODULES:
        entry = built.get(module)
        path = source_of(module)
        if not isinstance(entry, dict):
            stale.append(module)
            continue
        try:
            stat = path.stat()
        except OSError:
            stale.append(module)
            continue
        # same size and mtime: the file is the one hashed (a checkout that rewrites a file
        # changes its mtime, and then the hash decides)
        if [stat.st_size, stat.st_mtime_ns] == entry.get("stat"):
            continue
        if digest(path) != entry.get("sha256"):
            stale.append(module)
    return stale


def decide() -> str:
    """Whether the compiled modules may run: "compiled", or "pure: <why>"."""
    if os.environ.get("SLOTWISE_PURE", "") not in ("", "0"):
        return "pure: SLOTWISE_PURE is set"
    manifest = read_manifest()
    if manifest is None:
        return "pure: not built (scripts/bootstrap or `make` builds it when gcc is present)"
    if manifest.get("status") != "compiled":
        return f"pure: {manifest.get('reason', 'the build did not compile')}"
    if manifest.get("python") != sys.implementation.cache_tag:
        return f"pure: built for {manifest.get('python')}, running {sys.implementation.cache_tag}"
    if sorted(manifest.get("modules", {})) != sorted(MODULES):
        return "pure: the list of compiled modules changed since the build (`make` rebuilds)"
    stale = stale_modules(manifest)
    if stale:
        names = ", ".join(source_of(m).relative_to(PACKAGE.parent).as_posix() for m in stale)
        return f"pure: changed since the build: {names} (`make` rebuilds)"
    return "compiled"


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Finds the listed modules' ``.py`` files ahead of their compiled extensions."""

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        source = source_of(fullname)
        return importlib.util.spec_from_file_location(fullname, source) if source.exists() else None


def install() -> None:
    """Decide once per process; when pure, make every listed module load from source (and
    every module the last build compiled: one taken off the list since keeps its file until
    the next build)."""
    global _state
    _state = decide()
    if _state != "compiled" and not any(isinstance(f, _SourceFinder) for f in sys.meta_path):
        built = (read_manifest() or {}).get("modules", {})
        names = frozenset(MODULES) | frozenset(built if isinstance(built, dict) else ())
        sys.meta_path.insert(0, _SourceFinder(names))


def state() -> str:
    return _state


def loaded() -> dict[str, bool]:
    """Each listed module imported so far -> whether it runs compiled."""
    return {
        name: not str(getattr(sys.modules[name], "__file__", "")).endswith(".py")
        for name in MODULES
        if name in sys.modules
    }


def summary() -> str:
    """One line for ``slotwise --version``."""
    if _state == "compiled":
        return f"request path compiled with mypyc ({len(MODULES)} modules)"
    return f"request path in pure Python ({_state.removeprefix('pure: ')})"
