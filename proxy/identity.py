"""The first-party id cookie: issued to a consenting visitor who has none, rotated on erasure.

Users are keyed by the ``tracking.user_cookie`` cookie. When a request's signals were
gathered with personal consent and it carried no such cookie (or carried an erased id), the
proxy makes a fresh random id, makes it the subject of that request's decisions and sets it
on the answer. Never without personal consent: a contextual request gets no cookie, and no id
is made for it at all. The cookie is not HttpOnly: the SDK reads it and sends the same id.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

_SAME_SITE = ("Strict", "Lax", "None")


def new_user_id() -> str:
    """A fresh pseudonymous id: 128 random bits, URL-safe (the event schema's id alphabet)."""
    return "u" + secrets.token_hex(16)  # a letter first: never a leading '-' or '_'


def check_same_site(value: str) -> None:
    """``tracking.user_cookie_same_site``: one of Strict, Lax, None."""
    if value not in _SAME_SITE:
        raise ValueError(f"must be one of {', '.join(_SAME_SITE)} (got {value!r})")


def check_cookie_name(value: str) -> None:
    """A cookie name is an RFC 6265 token."""
    if not value or any(c in '()<>@,;:\\"/[]?={} \t' or not 32 < ord(c) < 127 for c in value):
        raise ValueError(f"{value!r} is not a cookie name (letters, digits and -._~!#$%&'*+^`|)")


def check_cookie_domain(value: str) -> None:
    """An empty domain (host-only) or a registered name like ``example.com``."""
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")
    if value and (not set(value) <= allowed or value.strip(".") == ""):
        raise ValueError(f"{value!r} is not a domain name (e.g. example.com; empty: host only)")


@dataclass(frozen=True, slots=True)
class IdentityCookie:
    """How the id cookie is written: name, lifetime, Secure, SameSite, Domain.

    ``max_age`` 0 means the proxy issues no cookie (it still reads one).
    """

    name: str = "sw_uid"
    max_age: int = 34_128_000  # 395 days: the longest a browser keeps a cookie
    secure: bool = True
    same_site: str = "Lax"
    domain: str = ""

    @property
    def issues(self) -> bool:
        return self.max_age > 0

    def set_cookie(self, user_id: str) -> tuple[bytes, bytes]:
        """The Set-Cookie header that gives the visitor ``user_id``."""
        parts = [f"{self.name}={user_id}", "Path=/", f"Max-Age={self.max_age}"]
        if self.domain:
            parts.append(f"Domain={self.domain}")
        if self.secure:
            parts.append("Secure")
        parts.append(f"SameSite={self.same_site}")
        return b"set-cookie", "; ".join(parts).encode("ascii")
