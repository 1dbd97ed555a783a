"""The notification area's error (codes in slotwise.errors.NOTIFY)."""

from __future__ import annotations

from slotwise.errors import NOTIFY, SlotwiseError


class NotifyError(SlotwiseError):
    """A notification channel, endpoint or template is not usable as configured."""

    area = NOTIFY
    code = "bad_endpoint"
