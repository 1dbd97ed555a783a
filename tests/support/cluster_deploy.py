"""A whole deployment on one machine, for the cluster test: a six-node Redis Cluster (three
primaries, one replica each, AOF with ``appendfsync always``), the example ad server under
granian, N ``slotwise serve --workers 2`` proxies (each in its own process group, with its own
models directory), and ``slotwise learn --serve``, every model going through the store."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from slotwise.proxy.loopback import free_port, wait_for_port
from tests.conftest import REPO
from tests.support.servers import RedisCluster, redis_cluster
from tests.support.timing import PATIENT_DEADLINES

POLICIES = REPO / "examples" / "adserver" / "policies"
EVENTS_STREAM = "log:{events}"  # where the events log lives (state/redis.py _stream_key)
_MODEL = re.compile(r'campaign="spring_sale",version="v(\d+)"')


@dataclass
class Proc:
    """A process started in its own session: ``kill -9`` of its group takes its workers too."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                self.args, env=self.env, stdout=sink, stderr=subprocess.STDOUT,
                cwd=REPO, start_new_session=True,
            )  # fmt: skip

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill_group(self) -> None:
        """``kill -9`` of the process group this test started (the server and its workers)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill_group()

    def cpu_seconds(self) -> float:
        """User + system CPU of every live process in the group (the workers included)."""
        if self.process is None:
            return 0.0
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == self.process.pid:  # the process group id
                total += (int(fields[11]) + int(fields[12])) / tick
        return total


@dataclass
class Deployment:
    cluster: RedisCluster
    store_url: str
    upstream: Proc
    proxies: list[Proc]
    learner: Proc
    directory: Path
    extra: dict[str, str] = field(default_factory=dict)
    baseline: Proc | None = None  # the same proxy on mem://, for a same-run comparison

    def wait_ready(self, proc: Proc, seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert proc.alive, f"{proc.name} exited: {proc.log.read_text()[-3000:]}"
            try:
                if httpx.get(f"{proc.base}/_sw/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{proc.name} did not become ready: {proc.log.read_text()[-3000:]}")

    def model_version(self, proc: Proc) -> int:
        """The spring_sale model version a proxy serves (0: none yet or unreachable)."""
        try:
            metrics = httpx.get(f"{proc.base}/_sw/metrics", timeout=5).text
        except httpx.TransportError:
            return 0
        return max((int(v) for v in _MODEL.findall(metrics)), default=0)


def _env(extra: dict[str, str]) -> dict[str, str]:
    return dict(
        os.environ,
        SLOTWISE_PLUGINS="builtins",
        SLOTWISE_BANDIT_MODELS_IN_STORE="true",
        SLOTWISE_BANDIT_RELOAD_INTERVAL="0.5",
        SLOTWISE_LOG_FORMAT="json",
        # one signing key for every proxy (the multi-machine rule)
        SLOTWISE_TRACKING_SECRET="cluster-test-signing-secret-0123456789",
        # deadlines a loaded 2-core machine meets; beyond them a request passes through
        **PATIENT_DEADLINES,
        **extra,
    )


@contextlib.contextmanager
def deployment(
    directory: Path,
    proxies: int = 3,
    *,
    extra: dict[str, str] | None = None,
    baseline: bool = False,
) -> Iterator[Deployment]:
    env = _env(extra or {})
    with redis_cluster(
        directory / "redis", 3, "--appendonly", "yes", "--appendfsync", "always", replicas=1
    ) as cluster:
        store = f"{cluster.url}?wait_replicas=1&wait_timeout=0.5"
        up_port = free_port()
        upstream = Proc(
            "adserver",
            [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
             "--port", str(up_port), "--workers", "1", "examples.adserver.app:app"],
            env, directory / "adserver.log", up_port,
        )  # fmt: skip
        procs = [
            Proc(
                f"proxy{i}",
                [
                    sys.executable,
                    "-m",
                    "slotwise",
                    "serve",
                    "--workers",
                    "2",
                    "--upstream",
                    f"http://127.0.0.1:{up_port}",
                    "--policies",
                    str(POLICIES),
                    "--store",
                    store,
                    "--models",
                    str(directory / f"models-{i}"),
                    "--port",
                    str(port),
                ],
                env,
                directory / f"proxy{i}.log",
                port,
            )  # fmt: skip
            for i, port in enumerate(free_port() for _ in range(proxies))
        ]
        learner_port = free_port()
        learner = Proc(
            "learner",
            [sys.executable, "-m", "slotwise", "learn", "--policies", str(POLICIES),
             "--store", store, "--models", str(directory / "models-learner"),
             "--window", "1", "--publish-every", "2",
             "--serve", f"127.0.0.1:{learner_port}"],
            env, directory / "learner.log", learner_port,
        )  # fmt: skip
        deployed = Deployment(cluster, store, upstream, procs, learner, directory, env)
        if baseline:
            port = free_port()
            memory = [*procs[0].args[: procs[0].args.index("--store")], "--store", "memory://"]
            deployed.baseline = Proc(
                "baseline", [*memory, "--port", str(port)], env, directory / "baseline.log", port
            )
        started = [*procs, *([deployed.baseline] if deployed.baseline else [])]
        try:
            upstream.start()
            wait_for_port(up_port, timeout=30)
            for proc in started:
                proc.start()
            for proc in started:
                deployed.wait_ready(proc, 120)
            learner.start()
            wait_for_port(learner_port, timeout=60)
            yield deployed
        finally:
            for proc in (learner, *started, upstream):
                proc.stop()
