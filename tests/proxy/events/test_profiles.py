"""Profile import: admin only, validated whole, read back by the profile provider, erasable."""

from __future__ import annotations

import msgspec
import pytest

from slotwise.plugins.profile_source import (
    Profile,
    StoreProfileSource,
    decode_profile,
    encode_profile_fields,
)
from slotwise.proxy.events.collector import AuditRecord
from slotwise.proxy.events.erasure import subject_hash
from slotwise.proxy.events.profiles import ProfileRecord, encode_profile
from slotwise.proxy.state import subject_key
from tests.proxy.events.conftest import ADMIN_TOKEN, Harness

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PROFILE = {"age": 31, "gender": "f", "segments": ["loyal", "vip"], "visits": 12}


async def test_a_stored_profile_is_what_the_profile_provider_reads(harness: Harness) -> None:
    response = await harness.client.put("/_sw/admin/profiles/u1", json=PROFILE, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["stored"] is True
    profile, cart = await StoreProfileSource(harness.store, subject_key).records("u1")
    assert profile is not None and cart is None
    assert (profile.age, profile.gender, profile.segments, profile.visits) == (
        31,
        "f",
        ("loyal", "vip"),
        12,
    )
    # a record replaces the previous one whole: dropped fields are gone
    await harness.client.put("/_sw/admin/profiles/u1", json={"age": 32}, headers=AUTH)
    profile, _ = await StoreProfileSource(harness.store, subject_key).records("u1")
    assert profile is not None and (profile.age, profile.segments) == (32, ())
    audit = [
        msgspec.json.decode(e.data, type=AuditRecord) for e in await harness.store.log_read("audit")
    ]
    assert [a.action for a in audit] == ["profile", "profile"]
    assert all(a.subject_sha256 == subject_hash("u1") for a in audit)


async def test_profiles_are_stored_compact_and_json_ones_still_read(harness: Harness) -> None:
    response = await harness.client.put("/_sw/admin/profiles/u1", json=PROFILE, headers=AUTH)
    assert response.status_code == 200, response.text
    stored = await harness.store.get(subject_key("u1", "profile"))
    assert stored is not None and stored[:1] == b"\x94"  # an array of the four fields given
    assert len(stored) < len(msgspec.json.encode(PROFILE)) / 2
    # what versions before issue 22 stored, or a site wrote itself: JSON, read as before
    await harness.store.set(subject_key("u2", "profile"), msgspec.json.encode(PROFILE))
    source = StoreProfileSource(harness.store, subject_key)
    (one, _), (two, _) = await source.records("u1"), await source.records("u2")
    assert one is not None and two is not None
    assert msgspec.structs.asdict(one) == msgspec.structs.asdict(two)


def test_the_compact_profile_keeps_its_field_order_and_ignores_later_fields() -> None:
    full = ProfileRecord(
        age=40,
        gender="d",
        segments=("a",),
        visits=3,
        first_seen=1.5,
        email="x@y.z",
        time_zone="UTC",
    )
    profile = decode_profile(encode_profile(full))
    assert (profile.age, profile.gender, profile.segments, profile.visits, profile.first_seen) == (
        40, "d", ("a",), 3, 1.5,
    )  # fmt: skip
    # absent fields at the end are left out; absent ones before them are nil
    assert encode_profile(ProfileRecord(age=40)) == b"\x91\x28"
    compact = decode_profile(encode_profile(ProfileRecord(visits=2)))
    assert msgspec.structs.asdict(compact) == msgspec.structs.asdict(Profile(visits=2))
    # a field a later version appends is ignored by this one
    later = encode_profile_fields([40, None, (), 0, None, None, None, "new"])
    assert decode_profile(later).age == 40
    # a damaged compact profile fails as a damaged JSON one does
    with pytest.raises(msgspec.MsgspecError):
        decode_profile(b"\x92\xa5ab")


async def test_bad_profiles_are_refused_with_the_field_and_nothing_is_stored(
    harness: Harness,
) -> None:
    cases = {
        b'{"age": -3}': "$.age",
        b'{"age": "old"}': "$.age",
        b'{"segments": ["ok", ""]}': "$.segments[1]",
        b'{"segments": ["drop table"]}': "$.segments[0]",
        b'{"favourite": 1}': "$.favourite",
        b"{not json": "$",
        b'{"gender": "\xff"}': "$",
        b"[" * 3000 + b"]" * 3000: "$",
    }
    for body, path in cases.items():
        response = await harness.client.put("/_sw/admin/profiles/u1", content=body, headers=AUTH)
        assert response.status_code == 422, body
        error = response.json()["error"]
        assert error["code"] == "invalid_profile"
        assert error["rejections"][0]["path"] == path, (body, error)
    oversized = b'{"gender": "' + b"x" * 9000 + b'"}'
    answers = [
        await harness.client.put("/_sw/admin/profiles/u1", content=oversized, headers=AUTH),
        await harness.client.put(
            "/_sw/admin/profiles/u1",
            content=b"<profile/>",
            headers={**AUTH, "Content-Type": "application/xml"},
        ),
    ]
    assert [(a.status_code, a.json()["error"]["code"]) for a in answers] == [
        (413, "profile_too_large"),
        (415, "unsupported_media_type"),
    ]
    assert await harness.store.get(subject_key("u1", "profile")) is None


async def test_profiles_need_the_admin_token_and_a_valid_id(harness: Harness) -> None:
    anonymous = await harness.client.put("/_sw/admin/profiles/u1", json=PROFILE)
    assert anonymous.status_code == 401
    bad_id = await harness.client.put("/_sw/admin/profiles/..%2F*", json=PROFILE, headers=AUTH)
    assert bad_id.status_code == 400
    assert bad_id.json()["error"]["code"] == "invalid_user_id"


async def test_an_erased_user_is_not_brought_back(harness: Harness) -> None:
    await harness.client.put("/_sw/admin/profiles/u1", json=PROFILE, headers=AUTH)
    erased = await harness.client.delete("/_sw/admin/users/u1", headers=AUTH)
    assert erased.json()["keys"] >= 1
    again = await harness.client.put("/_sw/admin/profiles/u1", json=PROFILE, headers=AUTH)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "user_erased"
    assert await harness.store.get(subject_key("u1", "profile")) is None
