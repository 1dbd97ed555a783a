"""The compact stored form of decision records: every field round-trips, JSON records written
by earlier versions still read, and what cannot be read is refused with a clear error."""

from __future__ import annotations

import hashlib
import json

import msgspec
import pytest

from slotwise.proxy.bandit.errors import BanditError
from slotwise.proxy.decision_codec import (
    SIGNAL_NAMES,
    SIGNAL_VALUES,
    decode_stored,
    encode_stored,
    is_compact,
    stored_ts,
)
from slotwise.proxy.decision_log import (
    DecisionRecord,
    OutcomeRecord,
    SlotRecord,
    encode_record,
    failed,
)
from slotwise.proxy.learn.log import decode
from tests.conftest import REPO

SIGNALS = {
    "consent.level": "personal",
    "device.type": "mobile",
    "time.hour": 20,
    "cart.value": 0.0,
    "user.is_new": True,
    "user.segments": ("vip", "deal-hunter"),
    "cart.items": (),
    "shop.loyalty_tier": "gold",  # a plugin's signal: not in the built-in table
    "x": 3.5,
}
SLOTS = [
    SlotRecord("headline", "h2", 0.95, ("h1", "h2")),
    SlotRecord("image", None, 1.0, ()),
    SlotRecord("cta", "shop", 0.5, ("shop", "see")),
]


def _served() -> DecisionRecord:
    return DecisionRecord(
        id="d-1",
        ts=1763790000.25,
        campaign="spring",
        policy_version="3f2a",
        model_version="v7",
        holdout_share=0.1,
        personal=True,
        signals=dict(SIGNALS),  # type: ignore[arg-type]
        slots=list(SLOTS),
        eligible={s.slot: s.candidates for s in SLOTS},
        format="json",
    )


RECORDS = [
    _served(),
    failed(_served(), "guardrail"),  # no slots, the choice sets kept in eligible
    DecisionRecord(  # a holdout: nothing served, the choice sets in eligible
        id="d-2",
        ts=1.0,
        campaign="c",
        holdout=True,
        holdout_share=0.2,
        eligible={"headline": ("h1", "h2"), "image": ("a",)},
    ),
    DecisionRecord(id="d-3", ts=2.0, campaign="empty"),
    msgspec.structs.replace(
        _served(),
        outcome=OutcomeRecord(1.0, 1.0, 59.7, 5.0, 12.5),
        trigger="abandoned_cart",
        trigger_offer="ten_off",
        offer="ten_off",
        removed={"free_shipping": ("budget_spent",), "twenty_off": ("margin", "cap")},
        eligible={"cta": ("shop", "see"), "headline": ("h1", "h2"), "image": ()},  # reordered
    ),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.id + (r.fail_open or ""))
def test_every_field_round_trips(record: DecisionRecord) -> None:
    data = encode_stored(record)
    assert is_compact(data)
    back = decode_stored(data)
    assert back == record
    # the same JSON as the record itself: readers of exports see no difference
    assert encode_record(back) == encode_record(record)
    assert list(back.eligible.items()) == list(record.eligible.items())
    assert stored_ts(data) == record.ts
    assert decode(data, "decisions@1") == record


def test_the_stored_form_is_a_third_of_the_json() -> None:
    record = _served()
    assert len(encode_stored(record)) * 3 < len(encode_record(record))


def test_json_records_written_before_still_read() -> None:
    record = _served()
    data = encode_record(record)
    assert not is_compact(data)
    assert decode_stored(data) == record
    assert stored_ts(data) == record.ts
    assert decode(data, "decisions@1") == record


def test_a_signal_number_of_a_later_version_is_refused_clearly() -> None:
    data = encode_stored(msgspec.structs.replace(_served(), signals={"device.type": "mobile"}))
    index = SIGNAL_NAMES.index("device.type")
    later = data.replace(bytes([0x91, index]), bytes([0x91, 0x7F]))  # one name: number 127
    assert later != data
    with pytest.raises(msgspec.ValidationError, match="signal number 127"):
        decode_stored(later)
    with pytest.raises(BanditError) as error:
        decode(later, "decisions@7")
    assert error.value.code == "bad_log_record" and "decisions@7" in error.value.message


def test_a_damaged_stored_record_is_a_bad_log_record() -> None:
    data = encode_stored(_served())
    with pytest.raises(BanditError) as error:
        decode(data[: len(data) // 2], "decisions@9")
    assert error.value.code == "bad_log_record" and "decisions@9" in error.value.message


def test_the_signal_table_names_every_built_in_signal_once() -> None:
    assert len(set(SIGNAL_NAMES)) == len(SIGNAL_NAMES)
    document = json.loads((REPO / "dsl" / "builtin_signals.json").read_text())
    missing = {s["name"] for s in document["signals"]} - set(SIGNAL_NAMES)
    # append a new built-in signal at the end of SIGNAL_NAMES (stored records index it)
    assert not missing, sorted(missing)


def _format_1(record: DecisionRecord) -> bytes:
    """``record`` as the version before issue 22's format 2 stored it (format 1)."""
    codec = msgspec.msgpack.Encoder()
    eligible = list(record.eligible.items())
    slots = [msgspec.structs.astuple(s) for s in record.slots]
    return codec.encode(
        (
            1,
            record.id,
            record.ts,
            record.campaign,
            record.policy_version,
            record.model_version,
            record.holdout,
            record.holdout_share,
            record.personal,
            [SIGNAL_NAMES.index(n) if n in SIGNAL_NAMES else n for n in record.signals],
            list(record.signals.values()),
            slots,
            None if eligible == [(s[0], s[3]) for s in slots] else eligible,
            None if record.outcome is None else msgspec.structs.astuple(record.outcome),
            record.format,
            record.fail_open,
            record.trigger,
            record.trigger_offer,
            record.offer,
            list(record.removed.items()),
        )
    )


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.id + (r.fail_open or ""))
def test_records_of_format_1_still_read(record: DecisionRecord) -> None:
    data = _format_1(record)
    assert is_compact(data) and data[3] == 1  # array 16 header, then the format
    assert decode_stored(data) == record
    assert stored_ts(data) == record.ts
    assert decode(data, "decisions@1") == record


def test_format_2_codes_values_ids_variants_and_uniform_chances() -> None:
    record = msgspec.structs.replace(
        _served(),
        id="0123456789abcdef",
        policy_version="2d85bd5b05f2f420",
        slots=[
            SlotRecord("headline", "h2", 0.5, ("h1", "h2")),  # uniform: left out
            SlotRecord("image", "x", 0.25, ("a", "b")),  # not a candidate, not uniform
            SlotRecord("cta", None, 1.0, ()),
        ],
        eligible={"headline": ("h1", "h2"), "image": ("a", "b"), "cta": ()},
    )
    data = encode_stored(record)
    assert data[3] == 2
    assert decode_stored(data) == record
    stored = msgspec.msgpack.decode(data, ext_hook=lambda code, raw: (code, bytes(raw)))
    assert stored[1] == bytes.fromhex("0123456789abcdef") and isinstance(stored[4], bytes)
    assert stored[10][0] == (1, bytes([SIGNAL_VALUES.index("personal")]))
    assert stored[11] == [["headline", 1, None, ["h1", "h2"]], ["image", "x", 0.25, ["a", "b"]],
                          ["cta", None, 1.0, []]]  # fmt: skip
    # what is not lowercase hexadecimal stays text
    texts = ("ABCDEF0123456789", "abcd ef01 2345 6789", "0123456", "id-1")
    for text in (*texts, "0123456789abcdeF", "abcdefg1", "0123456789abcdeé", "Xy3_-kQ9aZb7cD2e"):
        other = msgspec.structs.replace(record, id=text, policy_version=text)
        assert decode_stored(encode_stored(other)) == other
        assert msgspec.msgpack.decode(encode_stored(other))[1] == text  # as text, not bytes


def test_the_browser_like_record_is_under_250_bytes() -> None:
    # what `GET /ad` with browser-like headers logs for the example adserver campaign
    # (scripts/measure_user_memory.py): 323 bytes in format 1
    signals = {
        "consent.level": "personal", "consent.reason": "granted", "request.path": "/ad",
        "request.page_type": "other", "request.referrer": "google.com",
        "request.language": "de", "device.os": "ios", "device.browser": "safari",
        "device.type": "mobile", "geo.country": "DE", "time.hour": 20, "time.weekday": "sat",
        "time.daypart": "evening", "user.visits": 0, "user.is_new": True,
        "user.segments": (), "cart.value": 0.0, "cart.count": 0, "cart.items": (),
        "ad.format": "json", "ad.campaign_id": "cmp-spring", "ad.placement": "home-top",
    }  # fmt: skip
    choices = [("headline", ("h_de",)), ("image", ("beach", "city")), ("cta", ("shop", "see"))]
    record = DecisionRecord(
        id="5f0c1e2d3b4a6978",
        ts=1_796_504_236.8,
        campaign="spring_sale",
        policy_version="2d85bd5b05f2f420",
        model_version="rules",
        holdout_share=0.1,
        signals=signals,  # type: ignore[arg-type]
        slots=[SlotRecord(n, c[-1], 1.0 / len(c), c) for n, c in choices],
        eligible=dict(choices),
        format="json",
    )
    assert len(_format_1(record)) > 320
    assert len(encode_stored(record)) <= 250
    assert decode_stored(encode_stored(record)) == record


def test_a_value_number_of_a_later_version_is_refused_clearly() -> None:
    data = encode_stored(msgspec.structs.replace(_served(), signals={"device.type": "mobile"}))
    index = SIGNAL_VALUES.index("mobile")
    later = data.replace(bytes([0xD4, 1, index]), bytes([0xD4, 1, 0xF0]))
    assert later != data
    with pytest.raises(msgspec.ValidationError, match="signal value number 240"):
        decode_stored(later)
    with pytest.raises(BanditError) as error:
        decode(later, "decisions@8")
    assert error.value.code == "bad_log_record"


def test_the_value_table_is_frozen_and_holds_every_built_in_enumeration() -> None:
    # stored records index it: append only
    digest = hashlib.sha256("\n".join(SIGNAL_VALUES[:68]).encode()).hexdigest()
    assert digest == "04ffaee5bae5769a2ffba8cfc82a1a171e486669dec5e223ee6676f410819fa6", digest
    assert len(set(SIGNAL_VALUES)) == len(SIGNAL_VALUES) <= 256
    document = json.loads((REPO / "dsl" / "builtin_signals.json").read_text())
    values = {v for s in document["signals"] for v in s.get("values", ())}
    # append a new built-in enumeration value at the end of SIGNAL_VALUES
    assert not values - set(SIGNAL_VALUES), sorted(values - set(SIGNAL_VALUES))


@pytest.mark.parametrize(
    ("slot", "message"),
    [
        (["cta", 5, None, ["shop", "see"]], "variant number 5 is not a candidate"),
        (["cta", -1, None, ["shop", "see"]], "Expected `int` >= 0"),
        (["cta", None, None, []], "no probability and no candidates"),
    ],
)
def test_a_damaged_slot_of_format_2_is_refused_clearly(slot: list[object], message: str) -> None:
    stored = msgspec.msgpack.decode(encode_stored(_served()))
    stored[11] = [slot]
    stored[12] = [["cta", ["shop", "see"]]]
    with pytest.raises(msgspec.ValidationError, match=message):
        decode_stored(msgspec.msgpack.encode(stored))
