"""Start real servers for tests: a redis-server on a free loopback port, stopped afterwards."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from slotwise.proxy.loopback import free_port, wait_for_port


def require_binary(name: str) -> str:
    """The binary's path; skip the test without it, but fail under CI=true."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed (scripts/system-deps installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run every test")
        pytest.skip(reason)
    return path


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]
    directory: Path
    args: list[str] = field(default_factory=list)  # how it was started, to start it again

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        """``kill -9``: no shutdown, no last fsync, no goodbye to replicas or the cluster."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def start_again(self) -> None:
        """Start the stopped server as before (same port, directory, AOF and nodes.conf)."""
        assert self.args and self.process.poll() is not None
        with open(self.directory / "redis.log", "ab") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def redis_server(directory: Path, *extra: str, port: int | None = None) -> Iterator[RedisServer]:
    binary = require_binary("redis-server")
    port = port or free_port()
    directory.mkdir(parents=True, exist_ok=True)
    args = [
        binary,
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(directory),
        "--save", "",
        "--appendonly", "no",
        "--protected-mode", "yes",
        "--loglevel", "warning",
        *extra,
    ]  # fmt: skip
    with open(directory / "redis.log", "wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    server = RedisServer(port, process, directory, args)
    try:
        wait_for_port(port)
        yield server
    finally:
        server.stop()


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free as well."""
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


@dataclass
class RedisCluster:
    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def role(self, node: RedisServer) -> tuple[str, int | None]:
        """("master", None) or ("slave", the port of its primary), as the node says now."""
        info = _cli(node.port, "info", "replication")
        fields = dict(
            line.split(":", 1) for line in info.splitlines() if ":" in line and "#" not in line
        )
        role = fields.get("role", "?").strip()
        port = fields.get("master_port", "").strip()
        return role, (int(port) if role == "slave" and port else None)

    def primary_of(self, key: str) -> RedisServer | None:
        """The node serving ``key``'s slot now, as a running node sees it (None: failing over)."""
        asked = next(n for n in self.nodes if n.process.poll() is None).port
        slot = int(_cli(asked, "cluster", "keyslot", key).strip())
        for line in _cli(asked, "cluster", "nodes").splitlines():
            parts = line.split()
            if "master" not in parts[2] or "fail" in parts[2]:
                continue
            for span in parts[8:]:
                low, _, high = span.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    port = int(parts[1].split("@")[0].rsplit(":", 1)[1])
                    return next(n for n in self.nodes if n.port == port)
        return None

    def replicas_of(self, primary: RedisServer) -> list[RedisServer]:
        alive = [n for n in self.nodes if n.process.poll() is None]
        return [n for n in alive if self.role(n)[1] == primary.port]

    def wait_replicas_linked(self, timeout: float = 30.0) -> None:
        """Until every running replica has its link to its primary up (synced)."""
        deadline = time.monotonic() + timeout
        pending = list(self.nodes)
        while pending:
            pending = [
                n for n in pending
                if n.process.poll() is None
                and "role:slave" in (info := _cli(n.port, "info", "replication"))
                and "master_link_status:up" not in info
            ]  # fmt: skip
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"replicas on {[n.port for n in pending]} did not sync")
            time.sleep(0.1)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def _cli(port: int, *command: str) -> str:
    cli = require_binary("redis-cli")
    return subprocess.run(
        [cli, "-h", "127.0.0.1", "-p", str(port), *command],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout


def _wait_cluster_ok(cli: str, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = subprocess.run(
            [cli, "-h", "127.0.0.1", "-p", str(port), "cluster", "info"],
            capture_output=True,
            text=True,
        ).stdout
        if "cluster_state:ok" in info:
            return
        time.sleep(0.1)
    raise TimeoutError(f"redis cluster on port {port} did not reach cluster_state:ok")


@contextmanager
def redis_cluster(
    directory: Path, masters: int = 3, *extra: str, replicas: int = 0
) -> Iterator[RedisCluster]:
    """``masters`` primaries, each with ``replicas`` replicas, joined into one cluster."""
    binary = require_binary("redis-server")
    cli = require_binary("redis-cli")
    nodes: list[RedisServer] = []
    cluster = RedisCluster(nodes)
    try:
        for index in range(masters * (1 + replicas)):
            port = free_cluster_port()
            node_dir = directory / f"node{index}"
            node_dir.mkdir(parents=True, exist_ok=True)
            args = [
                binary,
                "--bind", "127.0.0.1",
                "--port", str(port),
                "--dir", str(node_dir),
                "--save", "",
                "--appendonly", "no",
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "2000",
                "--loglevel", "warning",
                *extra,
            ]  # fmt: skip
            with open(node_dir / "redis.log", "wb") as log:
                process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
            nodes.append(RedisServer(port, process, node_dir, args))
        for node in nodes:
            wait_for_port(node.port)
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes),
             "--cluster-replicas", str(replicas), "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )  # fmt: skip
        for node in nodes:
            _wait_cluster_ok(cli, node.port)
        cluster.wait_replicas_linked()
        yield cluster
    finally:
        cluster.stop()
