"""The command line contract and the test harness itself."""

from __future__ import annotations

import subprocess
import sys

import pytest

from slotwise import __version__, native
from slotwise.proxy.cli import COMMANDS, main
from tests.support.servers import RedisServer


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    # and whether the request path runs compiled (slotwise/native.py)
    assert capsys.readouterr().out.strip() == f"slotwise {__version__}, {native.summary()}"


def test_help_lists_every_subcommand() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "slotwise", "--help"], capture_output=True, text=True, check=True
    )
    for verb in COMMANDS:
        assert verb in result.stdout


def test_no_subcommand_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2


def test_unknown_subcommand_is_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-verb"])
    assert exit_info.value.code == 2


def test_redis_fixture_serves_a_real_server(redis: RedisServer) -> None:
    import redis as redis_client

    client = redis_client.Redis.from_url(redis.url)
    try:
        assert client.ping() is True
        client.set("k", "v")
        assert client.get("k") == b"v"
    finally:
        client.close()
