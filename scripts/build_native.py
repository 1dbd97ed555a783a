"""Compile the request path's modules (slotwise/native.py's MODULES) in place with mypyc.

    .venv/bin/python scripts/build_native.py            build (scripts/bootstrap runs this)
    .venv/bin/python scripts/build_native.py --if-stale build only when the build is missing or
                                                        a listed source changed (`make` runs this)
    .venv/bin/python scripts/build_native.py --clean    remove the compiled modules

Without a C compiler or Python's headers, with SLOTWISE_PURE=1, or when a module fails to
compile, it prints one line and slotwise runs in pure Python (every listed module, never a mix).
It exits 0 then, so the quick start works anyway, unless SLOTWISE_REQUIRE_COMPILED=1 is set
(CI): then a build that should have compiled and did not exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))  # slotwise.native, without needing the package installed

from slotwise import native  # noqa: E402

WORK = HERE / "build" / "native"  # mypy's cache and the generated C, kept for the next build
LOG = WORK / "build.log"
GROUP = "slotwise.native_code"  # the shared library: slotwise/native_code__mypyc.*.so

# Run in WORK, where `slotwise` links to the package: setuptools reads no pyproject.toml there
# (the venv's may predate its license form), and --inplace writes each module's .so beside its
# source through the link. mypy reads slotwise's own configuration (strict, stub overrides).
SETUP = f"""
import os, sys
from setuptools import setup
from mypyc.build import mypycify
config, *paths = sys.argv[1:]
sys.argv[1:] = ["build_ext", "--inplace", "--parallel", str(min(4, os.cpu_count() or 1))]
mypyc_args = ["--config-file", config, *paths]
extensions = mypycify(mypyc_args, opt_level="3", multi_file=True, group_name={GROUP!r})
for extension in extensions:  # the group's header is written in the group's package folder
    extension.include_dirs.append(os.path.join("build", "slotwise"))
setup(name="slotwise-native", ext_modules=extensions)
"""


def say(line: str) -> None:
    print(f"slotwise: {line}", flush=True)


def artefacts() -> list[Path]:
    """Every file a build leaves beside the sources, of this list or an earlier one (a module
    taken off the list must not keep a compiled file that would still be imported)."""
    found = list(native.PACKAGE.glob("native_code__mypyc.*"))
    # the package's own modules (slotwise/types.py) too, then its linked folders
    found.extend(p for p in native.PACKAGE.iterdir() if p.is_file() and _compiled(p.name))
    for top in sorted(p for p in native.PACKAGE.iterdir() if p.is_dir()):
        for folder, _, files in os.walk(top, followlinks=True):
            found.extend(Path(folder, name) for name in files if _compiled(name))
    return sorted(set(found))


def _compiled(name: str) -> bool:
    return name.endswith(".pyd") or (".cpython-" in name and name.endswith(".so"))


def clean() -> None:
    for path in artefacts():
        path.unlink()
    native.MANIFEST.unlink(missing_ok=True)


def write_manifest(status: str, reason: str, hashes: dict[str, dict[str, object]]) -> None:
    native.MANIFEST.write_text(
        json.dumps(
            {
                "status": status,
                "reason": reason,
                "python": sys.implementation.cache_tag,
                "modules": hashes,
            },
            indent=1,
        )
        + "\n"
    )


def missing_toolchain() -> str | None:
    """Why this machine cannot compile extension modules, or None."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler})"
    include = sysconfig.get_paths()["include"]
    if not (Path(include) / "Python.h").exists():
        return f"no Python headers ({include}/Python.h: install python3-dev)"
    try:
        import mypyc  # noqa: F401
    except ImportError:
        return "no mypyc (install slotwise's dev extra: pip install -e '.[dev]')"
    return None


def snapshot() -> dict[str, dict[str, object]]:
    """The sources' hashes, taken before compiling: a file edited during the build is stale."""
    hashes: dict[str, dict[str, object]] = {}
    for module in native.MODULES:
        path = native.source_of(module)
        stat = path.stat()
        hashes[module] = {
            "sha256": native.digest(path),
            "stat": [stat.st_size, stat.st_mtime_ns],
        }
    return hashes


def build() -> bool:
    """Compile; True when every listed module compiled."""
    clean()
    why = missing_toolchain()
    if why is not None:
        write_manifest("pure", f"not compiled: {why} when built", {})
        say(
            f"{why}: the request path runs in pure Python (install gcc and python3-dev, then "
            "`make`, to compile it: about a quarter fewer instructions per request)"
        )
        return False
    hashes = snapshot()
    WORK.mkdir(parents=True, exist_ok=True)
    link = WORK / "slotwise"
    if not link.is_symlink():
        link.symlink_to(native.PACKAGE.resolve())
    paths = [
        "slotwise/" + native.source_of(m).relative_to(native.PACKAGE).as_posix()
        for m in native.MODULES
    ]
    say(
        f"compiling {len(paths)} modules (the request path and the policy loader) with mypyc"
        " (SLOTWISE_PURE=1 skips this)"
    )
    started = time.monotonic()
    with LOG.open("w") as log:
        done = subprocess.run(
            [sys.executable, "-c", SETUP, str(HERE / "pyproject.toml"), *paths],
            cwd=WORK,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    seconds = time.monotonic() - started
    built = {
        m
        for m in native.MODULES
        if list(native.source_of(m).parent.glob(native.source_of(m).stem + ".cpython-*.so"))
    }
    if done.returncode != 0 or len(built) != len(native.MODULES):
        clean()
        tail = LOG.read_text().strip().splitlines()[-3:]
        write_manifest("failed", f"the build failed (see {LOG.relative_to(HERE)})", hashes)
        say(f"compiling failed after {seconds:.0f} s; running in pure Python. Last lines of")
        say(f"{LOG.relative_to(HERE)}: " + " | ".join(tail))
        return False
    write_manifest("compiled", "", hashes)
    say(f"compiled {len(built)} modules in {seconds:.0f} s (`slotwise --version` tells which runs)")
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clean", action="store_true", help="remove the compiled modules")
    parser.add_argument("--if-stale", action="store_true", help="build only when out of date")
    args = parser.parse_args()
    if args.clean:
        clean()
        return 0
    required = os.environ.get("SLOTWISE_REQUIRE_COMPILED", "") not in ("", "0")
    if os.environ.get("SLOTWISE_PURE", "") not in ("", "0"):
        clean()
        say("SLOTWISE_PURE is set: the request path stays pure Python (nothing compiled)")
        return 0
    if args.if_stale:
        manifest = native.read_manifest() or {}
        status = manifest.get("status")
        if status == "compiled" and native.decide() == "compiled":
            return 0  # up to date
        if status == "pure" and missing_toolchain() is not None:
            return 0  # still no compiler here (bootstrap said so already)
        if status == "failed" and not native.stale_modules(manifest):
            say(f"{manifest.get('reason')}; the sources did not change since: pure Python")
            return 1 if required else 0
    ok = build()
    return 1 if required and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
