"""The layers of the house, enforced (docs/architecture.md, "Layers").

Imports are read from the source (every ``import``, also inside functions; not the ones under
``if TYPE_CHECKING:``, which never run), so a lazy import cannot slip past:

- ``slotwise.types`` (and ``slotwise.errors``) import nothing of slotwise: every layer uses them;
- ``slotwise.dsl`` imports neither the runtime (``proxy``), the providers (``plugins``), nor the
  lab or the test harnesses;
- ``slotwise.plugins`` never imports ``slotwise.proxy`` (the test harnesses in
  ``slotwise.testing`` are the one place outside the runtime that runs the proxy);
- the request path (everything ``slotwise.proxy.app`` reaches, transitively, on the data plane)
  never imports the lab, the policy parser or compiler, Lark, or the learner.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "dsl": "dsl",
    "proxy": "proxy",
    "plugins": "plugins",
    "lab": "lab",
    "testing": "testing",
}

# the data plane's entry points: the ASGI app and the hot path
REQUEST_PATH_ROOTS = ("slotwise.proxy.app", "slotwise.proxy.decide")
# the control plane modules the request path may hand work to but never import: reached only
# from the lifespan (loading policies, starting the event endpoints), never per request
CONTROL_PLANE = (
    "slotwise.proxy.policy_snapshot",  # compiles policy files on reload
    "slotwise.proxy.events.endpoints",  # starlette app for /_sw/px, /_sw/events, admin
    "slotwise.proxy.state",  # the store, opened in the lifespan
)
FORBIDDEN_ON_REQUEST_PATH = (
    "slotwise.lab",
    "slotwise.testing",
    "slotwise.proxy.learn",
    "slotwise.proxy.cli",
    "slotwise.dsl.parser",
    "slotwise.dsl.lexer",
    "slotwise.dsl.transform",
    "slotwise.dsl.loader",
    "slotwise.dsl.check",
    "slotwise.dsl.compile",
    "slotwise.dsl.fmt",
    "lark",
)


def _module_path(module: str) -> Path | None:
    parts = module.split(".")
    if parts[0] != "slotwise":
        return None
    if len(parts) == 1:
        return ROOT / "slotwise" / "__init__.py"
    if parts[1] in ("types", "errors") and len(parts) == 2:
        candidate = ROOT / "slotwise" / f"{parts[1]}.py"
        return candidate if candidate.exists() else None
    folder = PACKAGES.get(parts[1])
    if folder is None:
        return None
    base = ROOT / folder / Path(*parts[2:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _all_modules() -> Iterator[str]:
    for name in ("types", "errors"):
        if (ROOT / "slotwise" / f"{name}.py").exists():
            yield f"slotwise.{name}"
    for package, folder in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in relative.parts if p != "__init__"]
            yield ".".join(["slotwise", package, *parts])


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


@cache
def imports_of(module: str) -> frozenset[str]:
    """Every module ``module`` imports at run time (absolute names)."""
    path = _module_path(module)
    if path is None:
        return frozenset()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            found.add(origin)
            # `from slotwise.proxy import decide` imports the submodule
            found.update(
                f"{origin}.{alias.name}"
                for alias in node.names
                if _module_path(f"{origin}.{alias.name}") is not None
            )
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return frozenset(found)


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _reach(roots: tuple[str, ...], stop: tuple[str, ...]) -> dict[str, str]:
    """Modules reachable from ``roots`` (not entering ``stop``), each with who imports it."""
    seen: dict[str, str] = {root: "" for root in roots}
    queue = list(roots)
    while queue:
        module = queue.pop()
        for imported in imports_of(module):
            if imported in seen or _within(imported, stop):
                continue
            seen[imported] = module
            if imported.startswith("slotwise"):
                queue.append(imported)
    return seen


def _chain(seen: dict[str, str], module: str) -> str:
    chain = [module]
    while seen.get(chain[-1]):
        chain.append(seen[chain[-1]])
    return " <- ".join(chain)


def test_the_module_table_finds_every_module() -> None:
    modules = list(_all_modules())
    assert "slotwise.proxy.decide" in modules and "slotwise.dsl.compiled" in modules
    assert all(_module_path(m) is not None for m in modules)


@pytest.mark.parametrize("module", ["slotwise.types", "slotwise.errors"])
def test_the_shared_vocabulary_imports_nothing_of_slotwise(module: str) -> None:
    if _module_path(module) is None:
        pytest.skip(f"{module} does not exist")
    assert not [m for m in imports_of(module) if m.startswith("slotwise")]


def test_the_language_imports_neither_runtime_nor_providers() -> None:
    bad = {
        module: sorted(
            m
            for m in imports_of(module)
            if _within(
                m, ("slotwise.proxy", "slotwise.plugins", "slotwise.lab", "slotwise.testing")
            )
        )
        for module in _all_modules()
        if module.startswith("slotwise.dsl")
    }
    assert {m: found for m, found in bad.items() if found} == {}


def test_providers_never_import_the_proxy() -> None:
    bad = {
        module: sorted(m for m in imports_of(module) if _within(m, ("slotwise.proxy",)))
        for module in _all_modules()
        if module.startswith("slotwise.plugins")
    }
    assert {m: found for m, found in bad.items() if found} == {}


def test_the_request_path_never_imports_the_lab_the_parser_or_the_learner() -> None:
    seen = _reach(REQUEST_PATH_ROOTS, CONTROL_PLANE)
    bad = [_chain(seen, m) for m in seen if _within(m, FORBIDDEN_ON_REQUEST_PATH)]
    assert bad == []


def test_the_check_sees_a_violation() -> None:
    # without the control-plane stops, the walk from the app reaches the policy loader: the
    # walk follows lazy imports, and the stops are what keeps the request path clean
    seen = _reach(REQUEST_PATH_ROOTS, ())
    assert "slotwise.dsl.loader" in seen
    assert "lark" in seen
