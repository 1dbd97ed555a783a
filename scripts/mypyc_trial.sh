#!/usr/bin/env bash
# Compile the request path's hot modules with mypyc in a throwaway worktree, for measuring only
# (docs/benchmarks.md, "Compiling the request path with mypyc"; slotwise ships pure Python).
#
#   scripts/mypyc_trial.sh REV DIR [full]     e.g. scripts/mypyc_trial.sh HEAD /tmp/mypyc-trial full
#
# then compare DIR with a plain worktree of the same REV, alternately, from /tmp:
#   taskset -c 0 .venv/bin/python scripts/bench_inprocess.py DIR g --rounds 3 --n 2000
# Needs gcc and Python's headers; the build takes 1-10 minutes (machine load).
#
# Without "full": the 12 modules that compile and run unchanged. With "full", three more after
# edits made in the throwaway tree only (each applied only where its text is still found):
# dsl/matcher.py (its build-time stand-in history returns a float where `int` is declared, and
# compiled code checks that), plugins/profile_source.py (msgspec misreads the annotations of a
# Struct defined in a compiled module, "Expected `type`, got `int`": the Structs move to an
# uncompiled module) and proxy/upstream/pool.py (mypyc: "continue inside try/finally block is
# unimplemented": the retry becomes a flag). plugins/builtin/profile.py and
# proxy/decision_codec.py define Structs too and stay uncompiled.
set -euo pipefail
rev=${1:?usage: scripts/mypyc_trial.sh REV DIR [full]}
dir=${2:?usage: scripts/mypyc_trial.sh REV DIR [full]}
here=$(cd "$(dirname "$0")/.." && pwd)
git -C "$here" worktree add --detach "$dir" "$rev"
cd "$dir"
modules=(
    slotwise/plugins/gather.py slotwise/plugins/request.py slotwise/proxy/decide.py
    slotwise/proxy/personalisers/campaigns.py slotwise/dsl/compiled.py
    slotwise/proxy/adapters/json.py slotwise/proxy/http_hygiene.py slotwise/proxy/http_body.py
    slotwise/proxy/upstream/connection.py slotwise/proxy/state/memory.py
    slotwise/proxy/tracking.py slotwise/proxy/chooser.py
)
if [ "${3:-}" = full ]; then
    mapfile -t -O "${#modules[@]}" modules < <("$here/.venv/bin/python" - <<'EOF'
from pathlib import Path


def edit(path, pairs, extra=None):
    text = Path(path).read_text()
    if not all(old in text for old, _ in pairs):
        return
    for old, new in pairs:
        text = text.replace(old, new, 1)
    Path(path).write_text(text)
    if extra:
        extra()
    print("slotwise/" + path)


edit("dsl/matcher.py", [(
    "    def count(self, event: str, since: float) -> int:\n"
    "        return self._count  # type: ignore[return-value]",
    "    def count(self, event: str, since: float) -> Any:\n        return self._count",
)])
source = Path("plugins/profile_source.py").read_text()
starts = ("class Profile(msgspec.Struct", "class _Product(msgspec.Struct):")
ends = ("@dataclass(frozen=True, slots=True)\nclass Event:", "def cart_from_events")
if all(s in source for s in starts + ends):
    cuts = [(source.index(a), source.index(b)) for a, b in zip(starts, ends)]
    structs = "".join(source[a:b] for a, b in cuts)
    (a1, b1), (a2, b2) = cuts
    source = (source[:a1] + "from slotwise.plugins.profile_records import Cart, Profile, _Product"
              "\n\n\n" + source[b1:a2] + source[b2:])
    Path("plugins/profile_source.py").write_text(source)
    Path("plugins/profile_records.py").write_text(
        "from __future__ import annotations\n\nimport msgspec\n\n\n" + structs)
    print("slotwise/plugins/profile_source.py")
edit("proxy/upstream/pool.py", [
    ("            timer: asyncio.TimerHandle | None = None\n            try:",
     "            timer: asyncio.TimerHandle | None = None\n            again = False\n"
     "            try:"),
    ("                if stale and retry_allowed and attempt == 1:\n"
     "                    continue\n                raise",
     "                if not (stale and retry_allowed and attempt == 1):\n"
     "                    raise\n                again = True"),
    ("                if timer is not None:\n                    timer.cancel()\n"
     "        raise AssertionError",
     "                if timer is not None:\n                    timer.cancel()\n"
     "            if again:\n                continue\n        raise AssertionError"),
])
EOF
    )
fi
# the venv's setuptools may predate pyproject.toml's license form; mypyc's build reads it
mv pyproject.toml pyproject.toml.off
"$here/.venv/bin/mypyc" "${modules[@]}"
mv pyproject.toml.off pyproject.toml
echo "compiled: $(find . -name '*.so' -not -path './build/*' | wc -l) extension modules in $dir"
