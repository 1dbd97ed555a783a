"""Profiles imported by the site's back end: ``PUT /_sw/admin/profiles/{user_id}``.

The ``profile`` signal provider reads ``user.age``, ``user.gender`` and ``user.segments`` from
a per-user ``profile`` record (slotwise.plugins.profile_source). Those traits come from the
site's CRM or customer database, never from the browser: a visitor must not be able to put
themselves into the "vip" segment. So the only writer is this admin endpoint (admin token,
loopback by default), and a record replaces the previous one whole.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from slotwise.plugins.profile_source import PROFILE_FIELDS, encode_profile_fields
from slotwise.proxy.events.schema import Rejection, malformed, rejection

Segment = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
# what a notification (slotwise.proxy.triggers) needs: where to write, and when it is night
Email = Annotated[str, msgspec.Meta(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
TimeZone = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+/-]+$")]
MAX_PROFILE_BYTES = 8 * 1024


class ProfileRecord(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """What the site knows about a user; every field optional (absent: the signal is absent)."""

    age: Annotated[int, msgspec.Meta(ge=0, le=130)] | None = None
    gender: Annotated[str, msgspec.Meta(min_length=1, max_length=32)] | None = None
    segments: Annotated[tuple[Segment, ...], msgspec.Meta(max_length=64)] = ()
    visits: Annotated[int, msgspec.Meta(ge=0)] = 0
    first_seen: Annotated[float, msgspec.Meta(ge=0)] | None = None
    email: Email | None = None
    time_zone: TimeZone | None = None

    def __post_init__(self) -> None:
        if self.time_zone is not None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(self.time_zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {self.time_zone!r} (an IANA name)") from None


def decode_profile(body: bytes) -> ProfileRecord | Rejection:
    """The validated record, or where and why it is wrong."""
    if len(body) > MAX_PROFILE_BYTES:
        return Rejection("$", f"a profile is at most {MAX_PROFILE_BYTES} bytes")
    try:
        return msgspec.json.decode(body, type=ProfileRecord)
    except msgspec.ValidationError as exc:
        return rejection(exc, "$", None)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        return Rejection("$", f"not valid JSON: {malformed(exc)}")


def encode_profile(record: ProfileRecord) -> bytes:
    """The stored form: the compact one (a MessagePack array of the fields in
    ``PROFILE_FIELDS`` order, slotwise.plugins.profile_source), about half the JSON's bytes
    (docs/state.md, "Record formats")."""
    return encode_profile_fields([getattr(record, name) for name in PROFILE_FIELDS])
