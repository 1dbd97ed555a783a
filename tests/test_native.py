"""The request path compiled with mypyc (slotwise/native.py): never stale, skippable, and built
whenever it could be.

The suite runs against whatever `scripts/bootstrap` built: compiled where gcc and Python's
headers are present (CI), pure Python otherwise. These tests check the guard itself, and that a
build that should have compiled did: a recorded failure fails here, and with
SLOTWISE_REQUIRE_COMPILED=1 (set it in CI) so does a tree that is not compiled at all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from slotwise import native
from tests.conftest import REPO

COMPILED = native.state() == "compiled"


def _run(code: str, **env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_every_listed_module_exists_and_defines_no_struct() -> None:
    # msgspec misreads a Struct compiled by mypyc: such modules must stay pure
    for module in native.MODULES:
        source = native.source_of(module)
        assert source.is_file(), module
        assert "msgspec.Struct" not in source.read_text(), module


def test_the_build_did_not_fail() -> None:
    manifest = native.read_manifest()
    if manifest is None or manifest.get("status") != "failed":
        return
    pytest.fail(
        f"the compiled build was attempted and failed: {manifest.get('reason')}; "
        "run .venv/bin/python scripts/build_native.py and fix what it reports"
    )


@pytest.mark.skipif(
    os.environ.get("SLOTWISE_REQUIRE_COMPILED", "") in ("", "0"),
    reason="SLOTWISE_REQUIRE_COMPILED is not set",
)
def test_the_request_path_runs_compiled_when_required() -> None:
    assert native.state() == "compiled"


@pytest.mark.skipif(not COMPILED, reason=f"not compiled here ({native.state()})")
def test_a_compiled_tree_runs_every_listed_module_compiled() -> None:
    out = _run(
        "import importlib, json, slotwise.native as n\n"
        "[importlib.import_module(m) for m in n.MODULES]\n"
        "print(json.dumps(n.loaded()))",
        SLOTWISE_PURE="0",
    )
    assert json.loads(out) == dict.fromkeys(native.MODULES, True)


def test_slotwise_pure_loads_every_listed_module_from_source() -> None:
    out = _run(
        "import importlib, json, slotwise.native as n\n"
        "[importlib.import_module(m) for m in n.MODULES]\n"
        "print(json.dumps([n.state(), n.loaded()]))",
        SLOTWISE_PURE="1",
    )
    state, loaded = json.loads(out)
    assert state == "pure: SLOTWISE_PURE is set"
    assert loaded == dict.fromkeys(native.MODULES, False)
    version = _run("from slotwise.proxy.cli import main; main(['--version'])", SLOTWISE_PURE="1")
    assert version.endswith("request path in pure Python (SLOTWISE_PURE is set)")


def _manifest_with(tmp_path: Path, change: dict[str, object]) -> Path:
    """The real sources' manifest with one module's entry changed."""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import build_native
    finally:
        sys.path.remove(str(REPO / "scripts"))
    hashes = build_native.snapshot()
    hashes["slotwise.proxy.decide"].update(change)
    path = tmp_path / "native-build.manifest"
    path.write_text(
        json.dumps(
            {"status": "compiled", "python": sys.implementation.cache_tag, "modules": hashes}
        )
    )
    return path


def test_a_source_changed_since_the_build_is_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLOTWISE_PURE", raising=False)
    monkeypatch.setattr(
        native, "MANIFEST", _manifest_with(tmp_path, {"sha256": "0" * 64, "stat": [0, 0]})
    )
    assert native.decide() == (
        "pure: changed since the build: slotwise/proxy/decide.py (`make` rebuilds)"
    )


def test_a_touched_but_unchanged_source_is_not_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a checkout or `touch` changes the mtime: the hash decides
    monkeypatch.delenv("SLOTWISE_PURE", raising=False)
    monkeypatch.setattr(native, "MANIFEST", _manifest_with(tmp_path, {"stat": [0, 0]}))
    assert native.decide() == "compiled"


def test_a_stale_build_runs_every_listed_module_from_source(tmp_path: Path) -> None:
    # the edit-then-test loop: one source edited after the build, and all of them load from
    # source (compiled callers would otherwise still run the edited module's old code)
    manifest = _manifest_with(tmp_path, {"sha256": "0" * 64, "stat": [0, 0]})
    out = _run(
        "import importlib, json, sys, pathlib, slotwise.native as n\n"
        "assert not any(m in sys.modules for m in n.MODULES)\n"
        f"n.MANIFEST = pathlib.Path({str(manifest)!r})\n"
        "n.install()\n"
        "[importlib.import_module(m) for m in n.MODULES]\n"
        "print(json.dumps([n.state(), n.loaded()]))",
        SLOTWISE_PURE="0",
    )
    state, loaded = json.loads(out)
    assert state.startswith("pure: changed since the build: slotwise/proxy/decide.py")
    assert loaded == dict.fromkeys(native.MODULES, False)


def test_an_unbuilt_tree_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLOTWISE_PURE", raising=False)
    monkeypatch.setattr(native, "MANIFEST", tmp_path / "absent")
    assert native.decide().startswith("pure: not built")


def test_a_module_taken_off_the_list_since_the_build_is_not_run_compiled(tmp_path: Path) -> None:
    # a pull that shortens MODULES without a rebuild: the module's compiled file is still on
    # disk, so the whole path runs from source, that module included
    manifest = _manifest_with(tmp_path, {})
    recorded = json.loads(manifest.read_text())
    recorded["modules"]["slotwise.proxy.app"] = {"sha256": "0" * 64, "stat": [0, 0]}
    manifest.write_text(json.dumps(recorded))
    out = _run(
        "import json, sys, pathlib, slotwise.native as n\n"
        f"n.MANIFEST = pathlib.Path({str(manifest)!r})\n"
        "n.install()\n"
        "import slotwise.proxy.app as m\n"
        "finder = next(f for f in sys.meta_path if isinstance(f, n._SourceFinder))\n"
        "print(json.dumps([n.state(), 'slotwise.proxy.app' in finder.names, m.__file__]))",
        SLOTWISE_PURE="0",
    )
    state, covered, file = json.loads(out)
    assert state.startswith("pure: the list of compiled modules changed since the build")
    assert covered and file.endswith("app.py")


def test_the_build_removes_compiled_files_of_modules_off_the_list(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import build_native
    finally:
        sys.path.remove(str(REPO / "scripts"))
    # in a linked folder, and beside the package's own modules (slotwise/errors.py)
    leftovers = [
        native.PACKAGE / "proxy" / "app.cpython-311-x86_64-linux-gnu.so",
        native.PACKAGE / "errors.cpython-311-x86_64-linux-gnu.so",
    ]
    assert not {"slotwise.proxy.app", "slotwise.errors"} & set(native.MODULES)
    try:
        for leftover in leftovers:
            leftover.write_bytes(b"")
        found = build_native.artefacts()
        assert all(leftover in found for leftover in leftovers)
    finally:
        for leftover in leftovers:
            leftover.unlink(missing_ok=True)
