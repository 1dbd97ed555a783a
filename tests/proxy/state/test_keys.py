"""Per-user keys: escaped so that no subject can reach another's state or a pattern."""

from __future__ import annotations

from slotwise.proxy.state.base import escape_key_part, subject_key


def test_subject_keys_escape_what_would_change_their_meaning() -> None:
    # hash tags, glob and LIKE patterns, the separator and the escape itself; the rest as is
    assert subject_key("a{b}*?[x]\\%_:ü", "profile") == (
        "user:{a%7Bb%7D%2A%3F%5Bx%5D%5C%25%5F%3Aü}:profile"
    )
    assert escape_key_part("plain-id.42") == "plain-id.42"


def test_every_other_character_is_kept_as_it_is() -> None:
    escaped = set("%{}*?[]\\:_")
    kept = "".join(chr(c) for c in range(128) if chr(c) not in escaped) + "üé€\U0001f600"
    assert escape_key_part(kept) == kept
    assert escape_key_part("".join(sorted(escaped))) == "".join(
        f"%{ord(c):02X}" for c in sorted(escaped)
    )
