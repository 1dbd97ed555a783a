from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import RedisCluster, RedisServer, redis_server
from tests.support.servers import redis_cluster as start_redis_cluster

REPO = Path(__file__).resolve().parent.parent
# the published IAB examples (copied from the team's shared data; README.md there says from where)
TEST_DATA = REPO / "tests" / "data"


@pytest.fixture(scope="session")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, for the whole session."""
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A real three-master Redis Cluster on free loopback ports, for the whole session."""
    with start_redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture(autouse=True)
def _loggers_as_they_were() -> Iterator[None]:
    """A command run in-process (`main(["serve", ...])`) installs slotwise's log handler
    (slotwise.proxy.logs.configure): the next test gets the loggers as they were, so that
    caplog and propagation work as usual."""
    import logging

    loggers = [logging.getLogger(name) for name in ("slotwise", "_granian", "granian.access")]
    saved = [(list(lg.handlers), lg.level, lg.propagate, list(lg.filters)) for lg in loggers]
    yield
    for logger, (handlers, level, propagate, filters) in zip(loggers, saved, strict=True):
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
        logger.filters[:] = filters
