"""One error base: every area's codes are in its table and documented, every user-facing error
class belongs to an area, and the command maps each to its exit code in one place."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import slotwise
from slotwise.dsl.errors import POLICY, Diagnostic, PolicyError
from slotwise.dsl.explain import SignalsFileError
from slotwise.dsl.location import LocationError
from slotwise.errors import (
    AREAS,
    CONFIG,
    EVENTS,
    HTTP,
    MODELS,
    NOTIFY,
    PLUGINS,
    STORE,
    USAGE,
    Area,
    Problem,
    SlotwiseError,
)
from slotwise.plugins.errors import PluginError, PluginProblem
from slotwise.proxy.bandit.errors import BanditError
from slotwise.proxy.cli import failed
from slotwise.proxy.config import ConfigError
from slotwise.proxy.state import StoreConfigError, StoreError, StoreUnavailable
from slotwise.proxy.state.base import StoreWriteUncertain
from slotwise.proxy.upstream.errors import UpstreamError, UpstreamFailure

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
EVERY_AREA = (POLICY, *AREAS)
ANSWERS = (HTTP, EVENTS)  # codes of HTTP answers: no command exits with them


def _rows(page: str) -> list[str]:
    return [line for line in (DOCS / page).read_text().splitlines() if line.startswith("| `")]


@pytest.mark.parametrize("area", EVERY_AREA, ids=lambda a: a.name)
def test_every_code_of_every_area_is_documented(area: Area) -> None:
    rows = _rows(area.docs)
    missing = [c for c in area.codes if not any(f"`{c}`" in row for row in rows)]
    assert not missing, f"docs/{area.docs} has no table row for the {area.name} codes {missing}"


@pytest.mark.parametrize("area", [a for a in AREAS if a.docs == "errors.md"], ids=lambda a: a.name)
def test_the_error_index_is_the_tables(area: Area) -> None:
    """docs/errors.md's table of an area: exactly its codes, meanings and exit codes."""
    page = (DOCS / "errors.md").read_text()
    heading = f"## {area.title} (`{area.name}`)"
    assert heading in page, f"docs/errors.md has no section {heading!r}"
    section = page.split(heading, 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    expected = [
        f"| `{code}` | {meaning} |" + ("" if area in ANSWERS else f" {area.exit_code_of(code)} |")
        for code, meaning in area.codes.items()
    ]
    assert rows == expected, f"paste the {area.name} table of slotwise.errors into errors.md"


def test_the_error_index_names_every_area() -> None:
    page = (DOCS / "errors.md").read_text()
    for area in EVERY_AREA:
        assert f"(`{area.name}`)" in page, f"docs/errors.md does not list the {area.name} area"
    assert "(errors.md)" in (DOCS / "index.md").read_text()


# -- the tables hold exactly the codes the code raises ---------------------------------------


def _error_classes() -> list[type[SlotwiseError]]:
    for package in ("slotwise.dsl", "slotwise.proxy", "slotwise.plugins", "slotwise.lab"):
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, f"{package}."):
            importlib.import_module(info.name)
    found: list[type[SlotwiseError]] = []
    todo = [SlotwiseError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found[1:]


def test_every_error_class_has_an_area_and_a_code_of_its_table() -> None:
    classes = _error_classes()
    assert {c.__name__ for c in classes} >= {
        "PolicyError", "LocationError", "SignalsFileError", "ConfigError", "UsageError",
        "StoreError", "StoreUnavailable", "StoreWriteUncertain", "StoreConfigError",
        "BanditError", "PluginError", "UpstreamError", "_Refusal",
    }  # fmt: skip
    for cls in classes:
        assert cls.area is not None, f"{cls.__qualname__} belongs to no area"
        if cls.code != SlotwiseError.code:  # else each instance names its code
            assert cls.code in cls.area.codes, f"{cls.__qualname__}.code is not in its table"


def _keyword_codes(call: ast.Call) -> set[str]:
    return {
        k.value.value
        for k in call.keywords
        if k.arg == "code" and isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)
    }


def _literal_codes() -> dict[Area, set[str]]:
    """The codes written in calls: BanditError("x", ...), send_error(send, 404, "x", ...),
    Refusal(413, "x", ...)..."""
    calls: dict[str, tuple[Area, int]] = {
        "BanditError": (MODELS, 0),
        "PluginProblem": (PLUGINS, 0),
        "_Refusal": (EVENTS, 1),
        "_read_limited": (EVENTS, 3),
        "send_error": (HTTP, 2),
        "Refusal": (HTTP, 1),  # the request limits' answers (slotwise.proxy.http_body)
        "Problem": (CONFIG, 0),
    }
    codes: dict[Area, set[str]] = {area: set() for area in AREAS}
    for folder in ("proxy", "plugins", "dsl", "lab", "testing"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call):
                    func = node.func
                    name = getattr(func, "id", None) or getattr(func, "attr", None)
                    if name == "NotifyError":  # NotifyError(message, code="...")
                        codes[NOTIFY] |= _keyword_codes(node)
                    if name in calls and len(node.args) > calls[name][1]:
                        arg = node.args[calls[name][1]]
                        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                            codes[calls[name][0]].add(arg.value)
                elif isinstance(node, ast.AsyncFunctionDef) and node.name == "_read_limited":
                    codes[EVENTS].add(ast.literal_eval(node.args.defaults[0]))
                elif isinstance(node, ast.Dict) and path.name == "endpoints.py":
                    for key, value in zip(node.keys, node.values, strict=True):
                        if isinstance(key, ast.Constant) and key.value == "code":
                            if isinstance(value, ast.Constant):  # answers built in place
                                codes[EVENTS].add(value.value)
    codes[HTTP] |= {f"upstream_{failure.value}" for failure in UpstreamFailure}
    for cls in _error_classes():
        if cls.area in codes and cls.code != SlotwiseError.code:
            codes[cls.area].add(cls.code)
    return codes


@pytest.mark.parametrize("area", AREAS, ids=lambda a: a.name)
def test_each_table_holds_exactly_the_codes_raised(area: Area) -> None:
    raised = _literal_codes()[area]
    if area is USAGE:
        raised.add("usage")  # UsageError's, raised in every verb
    assert sorted(raised - set(area.codes)) == [], f"add these to slotwise.errors.{area.name}"
    assert sorted(set(area.codes) - raised) == [], f"{area.name}: codes nothing raises"


# -- one mapping from errors to exit codes -----------------------------------------------------


def _diagnostic() -> Diagnostic:
    return Diagnostic("unknown_signal", 'unknown signal "geo.contry"', "p.sw", 3, 7)


CASES = [
    (PolicyError([_diagnostic()]), 1, "p.sw:3:7: error: unknown_signal: unknown signal"),
    (LocationError("expected a field name after '.'"), 1, "slotwise x: bad_location: expected"),
    (ConfigError([Problem("unknown_key", "unknown key 'a.b'", "f.toml")]), 2,
     "slotwise x: invalid configuration:\n  f.toml: unknown key 'a.b'"),
    (importlib.import_module("slotwise.proxy.cli").UsageError("--window must be positive"), 2,
     "slotwise x: --window must be positive"),
    (SignalsFileError("expected a JSON object"), 2, "slotwise x: bad_signals_file: expected"),
    (StoreError("it broke"), 1, "slotwise x: store_error: it broke"),
    (StoreUnavailable("cannot reach redis"), 1, "slotwise x: store_unavailable: cannot reach"),
    (StoreWriteUncertain("not confirmed"), 1, "slotwise x: store_unavailable: not confirmed"),
    (StoreConfigError("unknown scheme"), 2, "slotwise x: store_config: unknown scheme"),
    (BanditError("corrupt_model", "v1.vw: checksum mismatch"), 1,
     "slotwise x: corrupt_model: v1.vw: checksum mismatch"),
    (BanditError("unreadable_log", "log: cannot open"), 2, "slotwise x: unreadable_log: log"),
    (PluginError([PluginProblem("provider_init", "geo", "a"), PluginProblem("x", "y", "b")]), 1,
     "slotwise x: provider_init: provider 'geo': a\nslotwise x: x: provider 'y': b"),
    (UpstreamError(UpstreamFailure.TIMEOUT, "no headers"), 1,
     "slotwise x: upstream_timeout: timeout: no headers"),
    (SlotwiseError("plain", where="here", hint="do this"), 1,
     "slotwise x: here: error: plain (do this)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("error", "exit_code", "says"), CASES, ids=lambda v: type(v).__name__ if v else None
)
def test_each_error_class_maps_to_its_exit_code_and_message(
    error: SlotwiseError, exit_code: int, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert failed("x", error) == exit_code == error.exit_code
    assert capsys.readouterr().err.startswith(says)


def test_other_endings_are_interrupts_and_bugs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert failed("x", KeyboardInterrupt()) == 130
    assert capsys.readouterr().err == ""
    monkeypatch.delenv("SLOTWISE_DEBUG", raising=False)
    assert failed("x", ZeroDivisionError("division by zero")) == 70
    err = capsys.readouterr().err
    assert err.startswith("slotwise x: internal error: ZeroDivisionError: division by zero")
    assert "SLOTWISE_DEBUG=1" in err and "Traceback" not in err


def test_the_error_base_imports_nothing_of_slotwise() -> None:
    source = Path(slotwise.__file__).with_name("errors.py").read_text()
    imports = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom)]
    assert all(not (node.module or "").startswith("slotwise") for node in imports)
    assert STORE.exit_code_of("store_config") == 2 and STORE.exit_code_of("store_error") == 1
