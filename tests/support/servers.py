"""Start real servers for tests: a redis-server on a free loopback port, stopped afterwards."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

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
    server = RedisServer(port, process, directory)
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

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


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
def redis_cluster(directory: Path, masters: int = 3, *extra: str) -> Iterator[RedisCluster]:
    """``masters`` redis-server processes joined into one cluster (no replicas)."""
    binary = require_binary("redis-server")
    cli = require_binary("redis-cli")
    nodes: list[RedisServer] = []
    cluster = RedisCluster(nodes)
    try:
        for index in range(masters):
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
            nodes.append(RedisServer(port, process, node_dir))
        for node in nodes:
            wait_for_port(node.port)
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )  # fmt: skip
        for node in nodes:
            _wait_cluster_ok(cli, node.port)
        yield cluster
    finally:
        cluster.stop()
