"""Files on disk to a ``CompiledPolicySet``: find, read, parse, check, compile (control plane).

``load_policy_set(paths, schema)`` is the one call the proxy and the CLI make. Paths are files
or folders (searched recursively for ``*.sw``, in sorted order; files given explicitly keep
their order). Every problem of every file is collected before giving up, so one run shows them
all; nothing partial is ever returned.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from slotwise.dsl import ast
from slotwise.dsl.compiled import CompiledPolicySet
from slotwise.dsl.errors import Diagnostic, PolicyError, Severity, sorted_diagnostics
from slotwise.types import SignalSchema

EXTENSION = ".sw"
MAX_FILES = 1000


@dataclass
class Loaded:
    """What each stage of loading produced, with the time it took (for the CLI and tests)."""

    files: list[ast.PolicyFile] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity is Severity.WARNING]

    def lines(self) -> dict[str, list[str]]:
        return {path: text.splitlines() for path, text in self.sources.items()}


def find_policy_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[Diagnostic]]:
    """Expand files and folders into policy files; missing paths become diagnostics."""
    found: list[Path] = []
    problems: list[Diagnostic] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            inside = sorted(p for p in path.rglob(f"*{EXTENSION}") if p.is_file())
            if not inside:
                problems.append(
                    Diagnostic(
                        "no_policy_files", f"no {EXTENSION} files in this folder", str(path), 0, 0
                    )
                )
            found.extend(inside)
        elif path.is_file():
            found.append(path)
        else:
            why = "not a regular file or folder" if path.exists() else "no such file or folder"
            problems.append(Diagnostic("unreadable_file", why, str(path), 0, 0))
    unique = list(dict.fromkeys(found))
    if len(unique) > MAX_FILES:
        problems.append(
            Diagnostic(
                "limit_exceeded",
                f"{len(unique)} policy files; at most {MAX_FILES} make one policy set",
                str(unique[MAX_FILES]),
                0,
                0,
            )
        )
        unique = unique[:MAX_FILES]
    return unique, problems


def parse_sources(sources: Sequence[tuple[str, str]]) -> Loaded:
    """Parse (path, text) pairs; syntax errors are collected per file."""
    from slotwise.dsl.parser import parse_policy

    loaded = Loaded()
    started = time.perf_counter()
    for path, text in sources:
        loaded.sources[path] = text
        try:
            loaded.files.append(parse_policy(text, path))
        except PolicyError as exc:
            loaded.diagnostics.extend(exc.diagnostics)
    loaded.timings["parse"] = time.perf_counter() - started
    return loaded


def read_sources(paths: Iterable[str | Path]) -> tuple[list[tuple[str, str]], list[Diagnostic]]:
    files, problems = find_policy_files(paths)
    sources = []
    for path in files:
        try:
            sources.append((str(path), path.read_text(encoding="utf-8")))
        except UnicodeDecodeError as exc:
            problems.append(
                Diagnostic("unreadable_file", f"not UTF-8 text (byte {exc.start})", str(path), 0, 0)
            )
        except OSError as exc:
            problems.append(
                Diagnostic("unreadable_file", exc.strerror or str(exc), str(path), 0, 0)
            )
    return sources, problems


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Loading builds millions of small objects and frees few: each automatic collection
    scans all of them and finds nothing, which made parsing 100,000 rules 2.4x slower (and
    10,000 rules ~10%). The collector is back on, as it was, once loading ends."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def check_sources(sources: Sequence[tuple[str, str]], schema: SignalSchema) -> Loaded:
    """Parse and check; ``Loaded.diagnostics`` holds everything found, sorted."""
    from slotwise.dsl.check import check_policy_set

    with _collector_paused():
        loaded = parse_sources(sources)
        if not loaded.errors:
            started = time.perf_counter()
            loaded.diagnostics.extend(check_policy_set(loaded.files, schema, loaded.lines()))
            loaded.timings["check"] = time.perf_counter() - started
    loaded.diagnostics = sorted_diagnostics(loaded.diagnostics)
    return loaded


def compile_sources(
    sources: Sequence[tuple[str, str]], schema: SignalSchema
) -> tuple[CompiledPolicySet, Loaded]:
    """Parse, check and compile (path, text) pairs; raise PolicyError on any error."""
    from slotwise.dsl.compile import compile_policy_set, policy_version

    loaded = check_sources(sources, schema)
    if loaded.errors:
        raise PolicyError(loaded.diagnostics)
    started = time.perf_counter()
    with _collector_paused():
        policy = compile_policy_set(
            loaded.files, schema, policy_version(sources), warnings=loaded.warnings
        )
    loaded.timings["compile"] = time.perf_counter() - started
    return policy, loaded


def load_policy_set(paths: Iterable[str | Path], schema: SignalSchema) -> CompiledPolicySet:
    """Read, parse, check and compile the policy files under ``paths``.

    Raises ``PolicyError`` listing every error (sorted by file and position) when any file
    cannot be read, parsed or checked. Warnings do not stop loading; they are kept on
    ``CompiledPolicySet.warnings``.
    """
    sources, problems = read_sources(paths)
    if problems:
        raise PolicyError(problems)
    if not sources:
        raise PolicyError([Diagnostic("no_policy_files", "no policy files given", "", 0, 0)])
    policy, _ = compile_sources(sources, schema)
    return policy
