"""Metrics of every worker, added up at each scrape.

Granian's workers are separate processes and a scrape reaches one of them. Each worker keeps
its metrics in its own memory (the request path only adds numbers, no locks, no I/O) and
writes them, rendered, to ``<metrics_dir>/<pid>.prom`` every ``interval`` seconds and when it
stops (a new file then renamed over the old: a reader never sees half of one). The worker that
answers a scrape renders its own live numbers and adds the other files' samples:

- counters and histograms are summed over every file, of live workers and dead ones alike (a
  worker that died and was replaced keeps its counts, so totals never go down);
- gauges are summed over live workers only; ``*_info`` gauges take the largest value and
  ``slotwise_store_up`` the smallest (one worker that cannot reach the store shows);
- ``process_*`` samples carry a ``worker`` label (the pid) and come from live workers only.

So another worker's numbers lag by at most ``interval`` seconds (a ``kill -9`` loses at most
that much of its counts). The cost is off the request path: one render and one small file write
per worker per interval (measured in docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

SUFFIX: Final = ".prom"
_SAMPLE: Final = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$")
_PAGE_SIZE: Final = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICKS: Final = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_metrics(pid: int) -> str:
    """This process's CPU time, resident memory, open files and start time, labelled with its
    pid (Linux /proc; nothing elsewhere)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        boot = _boot_time()
    except (OSError, IndexError, ValueError):
        return ""
    cpu = (int(stat[11]) + int(stat[12])) / _TICKS  # utime, stime
    rss = int(stat[21]) * _PAGE_SIZE
    started = boot + int(stat[19]) / _TICKS
    label = f'{{worker="{pid}"}}'
    return (
        "# HELP process_cpu_seconds_total CPU time (user and system) of each worker.\n"
        "# TYPE process_cpu_seconds_total counter\n"
        f"process_cpu_seconds_total{label} {cpu:.2f}\n"
        "# HELP process_resident_memory_bytes Resident memory of each worker.\n"
        "# TYPE process_resident_memory_bytes gauge\n"
        f"process_resident_memory_bytes{label} {rss}\n"
        "# HELP process_open_fds Open file descriptors of each worker.\n"
        "# TYPE process_open_fds gauge\n"
        f"process_open_fds{label} {fds}\n"
        "# HELP process_start_time_seconds When each worker started (Unix time).\n"
        "# TYPE process_start_time_seconds gauge\n"
        f"process_start_time_seconds{label} {started:.2f}\n"
    )


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise ValueError("no btime in /proc/stat")


class SharedMetrics:
    """This worker's file in ``directory`` and the sum over every worker's."""

    def __init__(self, directory: Path, pid: int | None = None) -> None:
        self.directory = directory
        self.pid = os.getpid() if pid is None else pid
        self.path = directory / f"{self.pid}{SUFFIX}"

    def write(self, text: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        partial.write_text(text, encoding="utf-8")
        partial.replace(self.path)

    def others(self) -> list[tuple[str, bool]]:
        """The other workers' last texts, each with whether that worker is alive."""
        found = []
        for path in self.directory.glob(f"*{SUFFIX}"):
            if path == self.path or not path.stem.isdigit():
                continue
            with contextlib.suppress(OSError):
                found.append((path.read_text(encoding="utf-8"), _alive(int(path.stem))))
        return found

    def merged(self, own: str) -> str:
        """``own`` (this worker's live text) with every other worker's samples added."""
        return merge([(own, True), *self.others()])

    async def keep_writing(self, render: Callable[[], str], interval: float) -> None:
        """Write ``render()`` every ``interval`` seconds until cancelled, then once more."""
        try:
            while True:
                await asyncio.to_thread(self.write, render())
                await asyncio.sleep(interval)
        finally:
            with contextlib.suppress(OSError):
                self.write(render())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def merge(texts: Iterable[tuple[str, bool]]) -> str:
    """Prometheus texts added up (see the module's rules); ``texts`` is (text, alive) pairs,
    the first being the answering worker's."""
    helps: dict[str, list[str]] = {}  # family -> its HELP and TYPE lines
    kinds: dict[str, str] = {}
    values: dict[str, dict[str, float]] = {}  # family -> sample (name + labels) -> value
    for text, alive in texts:
        family = ""
        for line in text.splitlines():
            if line.startswith("# "):
                parts = line.split(" ", 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    family = parts[2]
                    if family not in values:
                        helps.setdefault(family, []).append(line)
                        if parts[1] == "TYPE" and len(parts) == 4:
                            kinds[family] = parts[3]
                continue
            match = _SAMPLE.match(line)
            if match is None:
                continue
            name, labels, raw = match.groups()
            owner = family if name.startswith(family) else name
            kind = kinds.get(owner, "untyped")
            if not alive and (kind == "gauge" or owner.startswith("process_")):
                continue
            try:
                value = float(raw)
            except ValueError:
                continue
            samples = values.setdefault(owner, {})
            sample = name + (labels or "")
            samples[sample] = _combine(owner, kind, samples.get(sample), value)
        for owner in helps:
            values.setdefault(owner, {})
    lines: list[str] = []
    for owner, samples in values.items():
        lines += helps.get(owner, [])
        lines += [f"{sample} {_number(value)}" for sample, value in samples.items()]
    return "\n".join(lines) + "\n"


def _combine(family: str, kind: str, before: float | None, value: float) -> float:
    if before is None:
        return value
    if kind == "gauge":
        if family.endswith("_info"):
            return max(before, value)
        if family == "slotwise_store_up":
            return min(before, value)
    return before + value


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def clear(directory: Path) -> None:
    """Remove the files of an earlier run (their counts are not this run's)."""
    for path in directory.glob(f"*{SUFFIX}"):
        with contextlib.suppress(OSError):
            path.unlink()
