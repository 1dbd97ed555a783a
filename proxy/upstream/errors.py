"""Why an upstream exchange failed, in terms the proxy maps to a status code."""

from __future__ import annotations

import enum

from slotwise.errors import HTTP, SlotwiseError


class UpstreamFailure(enum.Enum):
    """The cause of a failed exchange; ``status`` is what the client gets instead."""

    CONNECT = "connect"  # refused, unreachable, DNS: nothing was sent
    CONNECT_TIMEOUT = "connect_timeout"
    POOL_TIMEOUT = "pool_timeout"  # every allowed connection busy for too long
    TIMEOUT = "timeout"  # no response headers in time
    READ_TIMEOUT = "read_timeout"  # the body stalled
    PROTOCOL = "protocol"  # the upstream spoke broken HTTP
    DISCONNECTED = "disconnected"  # the connection dropped mid-exchange

    @property
    def status(self) -> int:
        if self in (UpstreamFailure.TIMEOUT, UpstreamFailure.READ_TIMEOUT):
            return 504
        if self in (UpstreamFailure.POOL_TIMEOUT, UpstreamFailure.CONNECT_TIMEOUT):
            return 504
        return 502


class UpstreamError(SlotwiseError):
    """An exchange with the upstream failed; ``failure`` says how (code ``upstream_FAILURE``)."""

    area = HTTP

    def __init__(self, failure: UpstreamFailure, detail: str) -> None:
        super().__init__(f"{failure.value}: {detail}", code=f"upstream_{failure.value}")
        self.failure = failure
        self.detail = detail
