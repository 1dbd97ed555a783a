"""What one delivery attempt gives: delivered, retry later, or never (a permanent failure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from slotwise.proxy.notify.outbox import Notification


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool
    permanent: bool = False
    reason: str = ""  # a short code and detail, shown in dead letters and logs
    retry_after: float | None = None  # the receiver's Retry-After, when it gave one

    @staticmethod
    def ok() -> Outcome:
        return Outcome(True)

    @staticmethod
    def retry(reason: str, retry_after: float | None = None) -> Outcome:
        return Outcome(False, False, reason, retry_after)

    @staticmethod
    def never(reason: str) -> Outcome:
        return Outcome(False, True, reason)


class Channel(Protocol):
    """Delivers one notification; never raises for a delivery failure (it returns it)."""

    async def deliver(self, notification: Notification) -> Outcome: ...

    async def aclose(self) -> None: ...
