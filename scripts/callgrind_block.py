"""Count the instructions of one block of a child process with callgrind (a file handshake).

The child runs under ``valgrind --tool=callgrind --instr-atstart=no``: it sets itself up
uninstrumented, touches ``SHAKE/ready`` and waits for ``SHAKE/go``; instrumentation is on
(``callgrind_control -i on``) only while it runs the measured block, which it ends by touching
``SHAKE/done``, then waits for ``SHAKE/exit``. Used by scripts/bench_instructions.py (requests
in process) and scripts/build_instructions.py (a policy build).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path


def count_block(
    child_args: Callable[[Path], list[str]], env: Mapping[str, str] | None = None
) -> int:
    """Instructions of the child's measured block; ``child_args(shake)`` is its command line
    after the interpreter (it must hand ``shake`` to the child)."""
    with tempfile.TemporaryDirectory(prefix="slotwise-callgrind-") as d:
        shake = Path(d)
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={shake / 'callgrind.out'}",
            sys.executable,
            *child_args(shake),
        ]
        child = subprocess.Popen(command, stderr=subprocess.DEVNULL, env=env)
        try:
            _wait_for(shake / "ready", child)
            _control(child.pid, "-i", "on")
            (shake / "go").touch()
            _wait_for(shake / "done", child)
            _control(child.pid, "-i", "off")
            _control(child.pid, "-d")
            (shake / "exit").touch()
            if child.wait(timeout=600) != 0:
                raise SystemExit(f"the measured process failed ({child.returncode})")
        finally:
            if child.poll() is None:
                child.kill()
        total = 0
        for dump in shake.glob("callgrind.out*"):
            found = re.search(r"^totals:\s+(\d+)", dump.read_text(errors="replace"), re.M)
            if found:
                total += int(found.group(1))
        return total


def _wait_for(path: Path, child: subprocess.Popen[bytes]) -> None:
    while not path.exists():
        if child.poll() is not None:
            raise SystemExit(f"the measured process ended early ({child.returncode})")
        time.sleep(0.2)


def _control(pid: int, *options: str) -> None:
    subprocess.run(["callgrind_control", *options, str(pid)], check=True, capture_output=True)
