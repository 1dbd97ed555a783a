"""How long relearning the retained log takes (docs/operations.md, "Bandit models past issue 22").

``python scripts/relearn_timing.py [--decisions 100000] [--store redis|sqlite]``

Fills a fresh store (a redis-server this script starts on a free loopback port, or a SQLite file
in a temporary directory) with DECISIONS decisions of the simulator's campaign (spring_sale of
examples/scenarios/segment-winners.sw: three slots of ten variants), chosen by the proxy's
bandit runtime (untrained: uniform) and stored through its DecisionLog, and their clicks (one
decision in ten) and conversions (one click in five) through the event collector; then runs the
procedure's commands as an operator does, each as a subprocess, and prints each one's wall
time and CPU time (user + system of the command):

    slotwise export decisions --store URL --output decisions.jsonl
    slotwise export events --store URL --output events.jsonl
    slotwise learn --policies segment-winners.sw --log decisions.jsonl events.jsonl \
        --models NEWDIR
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slotwise.dsl.loader import load_policy_set  # noqa: E402
from slotwise.plugins.registry import default_schema  # noqa: E402
from slotwise.proxy.bandit.runtime import BanditRuntime  # noqa: E402
from slotwise.proxy.decision_codec import encode_stored  # noqa: E402
from slotwise.proxy.decision_log import decision_record  # noqa: E402
from slotwise.proxy.events.collector import EventCollector  # noqa: E402
from slotwise.proxy.events.decisions import DecisionLog  # noqa: E402
from slotwise.proxy.events.schema import (  # noqa: E402
    ClickEvent,
    ConversionEvent,
    ConversionProps,
    Event,
)
from slotwise.proxy.state import open_store  # noqa: E402

POLICY = ROOT / "examples" / "scenarios" / "segment-winners.sw"
DEVICES = ("mobile", "desktop", "tablet")
COUNTRIES = ("DE", "FR", "GB", "US")


async def fill(url: str, decisions: int, start: float) -> tuple[int, int]:
    runtime = BanditRuntime(rng=random.Random(7))
    runtime.install_policy_set(load_policy_set([POLICY], default_schema()))
    rng = random.Random(11)
    events: list[Event] = []
    step = 90 * 86400.0 * 0.9 / decisions  # spread over most of the 90 retained days
    async with open_store(url) as store:
        async with DecisionLog(store) as log:
            for i in range(decisions):
                ts = start + step * i
                user = f"u{rng.randrange(20_000)}"
                signals = {
                    "device.type": rng.choice(DEVICES),
                    "geo.country": rng.choice(COUNTRIES),
                    "user.age": rng.randrange(18, 70),
                    "consent.level": "personal",
                }
                choice = runtime.choose("spring_sale", {}, signals, user)
                assert choice is not None
                record = decision_record(choice, f"d{i}", ts, "1", format="json")
                if not log.record(encode_stored(record), decision_id=record.id, subject=user):
                    sys.exit("the decision log's queue is full")
                if i % 10_000 == 9_999:
                    await log.flush()  # a proxy's background task flushes as it goes
                if choice.holdout or rng.random() >= 0.1:
                    continue
                events.append(ClickEvent(id=f"c{i}", time=ts + 5, decision_id=record.id))
                if rng.random() < 0.2:
                    props = ConversionProps(value=round(rng.uniform(10, 90), 2))
                    events.append(
                        ConversionEvent(
                            id=f"v{i}", time=ts + 300, decision_id=record.id, properties=props
                        )
                    )
        collector = EventCollector(store)
        for at in range(0, len(events), 500):
            await collector.collect(events[at : at + 500], consent="personal", received=start)
    return decisions, len(events)


# runs the command and writes its own CPU time and peak RSS: a child forked from this script
# would inherit its peak RSS (Linux keeps the high-water mark across exec), one forked from this
# small launcher does not
_LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(f"{usage.ru_utime + usage.ru_stime} {usage.ru_maxrss}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run(label: str, argv: list[str], work: Path) -> str:
    """Run one command; print its wall time, CPU time and peak memory."""
    out, err, usage = (work / f"{label}.{kind}" for kind in ("out", "err", "usage"))
    started = time.perf_counter()
    with out.open("wb") as stdout, err.open("wb") as stderr:
        launcher = [sys.executable, "-c", _LAUNCHER, str(usage), *argv]
        code = subprocess.run(launcher, stdout=stdout, stderr=stderr, check=False).returncode
    wall = time.perf_counter() - started
    if code != 0:
        sys.exit(f"{label} failed ({code}): {err.read_text()}")
    cpu, peak = usage.read_text().split()
    print(
        f"{label:<18} wall {wall:6.1f} s   cpu {float(cpu):6.1f} s"
        f"   peak RSS {int(peak) / 1024:6.0f} MiB",  # ru_maxrss is in KiB on Linux
        flush=True,
    )
    return out.read_text()


@contextlib.contextmanager
def redis(directory: Path) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed: pass --store sqlite")
    args = [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(directory)]
    args += ["--save", "", "--appendonly", "no", "--loglevel", "warning"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.1):
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--store", choices=("redis", "sqlite"), default="redis")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="relearn-") as temporary:
        work = Path(temporary)
        with contextlib.ExitStack() as stack:
            if args.store == "redis":
                url = stack.enter_context(redis(work))
            else:
                url = f"sqlite:///{work / 'state.db'}"
            started = time.perf_counter()
            decisions, events = asyncio.run(fill(url, args.decisions, time.time() - 90 * 86400))
            print(
                f"store {args.store}: {decisions:,} decisions and {events:,} reward events"
                f" written in {time.perf_counter() - started:.0f} s",
                flush=True,
            )
            cli = [sys.executable, "-m", "slotwise"]
            run(
                "export decisions",
                [*cli, "export", "decisions", "--store", url, "-o", str(work / "d")],
                work,
            )
            run(
                "export events",
                [*cli, "export", "events", "--store", url, "-o", str(work / "e")],
                work,
            )
        out = run(
            "learn --log",
            [*cli, "learn", "--policies", str(POLICY), "--log", str(work / "d"), str(work / "e")]
            + ["--models", str(work / "models")],
            work,
        )
        print(out.strip())
        print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
