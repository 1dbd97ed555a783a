"""The compact stored form of decision records: every field round-trips, JSON records written
by earlier versions still read, and what cannot be read is refused with a clear error."""

from __future__ import annotations

import json

import msgspec
import pytest

from slotwise.proxy.bandit.errors import BanditError
from slotwise.proxy.decision_codec import (
    SIGNAL_NAMES,
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
