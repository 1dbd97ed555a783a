"""The compact stored form of a decision record: what the proxy appends to the decisions log.

A :class:`~slotwise.proxy.decision_log.DecisionRecord` as JSON spells out every field name and
every signal name in every record (about 1.1 KB for a browser-like request of the example
campaign); the decisions log holds one per personalised response, so that is most of what a
user costs the store (docs/state.md, "Record formats"). The stored form is a MessagePack array
in field order, with:

- the signals as two arrays, their names and their values, where a built-in signal's name is
  its index in :data:`SIGNAL_NAMES` (a frozen, append-only table: stored records index it);
- the slots as ``[slot, variant, probability, candidates]`` arrays;
- ``eligible`` as nil when it is what the slots say (every served decision), else as
  ``[slot, candidates]`` pairs; ``outcome`` as five numbers or nil.

About 330 bytes for that same record, and cheaper to encode than JSON. The first element is
the format's number, so a later form can be told apart. Format 2 (issue 22, what this version
writes) is format 1 with, besides:

- a value of a built-in enumeration (``"personal"``, ``"mobile"``, ``"evening"``...) as a
  one-byte MessagePack extension (type 1) holding its index in :data:`SIGNAL_VALUES` (frozen,
  append-only) instead of its text;
- the record id and the policy version as bytes when they are lowercase hexadecimal (what
  the proxy makes), half the length;
- each slot's variant as its index among the slot's candidates, and its probability as nil
  when it is one over the number of candidates (what the rule chooser serves).

About 240 bytes for the browser-like record. :func:`decode_stored` reads formats 1 and 2
and the JSON records earlier versions stored (and converted logs hold); JSON stays the format
of log files and exports (slotwise.proxy.learn.log).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import msgspec

from slotwise.proxy.decision_log import DecisionRecord, LogValue, OutcomeRecord, SlotRecord

# the stored form's Structs (a compiled module cannot define them: slotwise/native.py)
from slotwise.proxy.decision_stored import Choices, Ext, JsonTime, Stored1, Stored2, StoredTime

# Append only, never reorder: a stored record names a built-in signal by its index here.
# (The built-in signals of 2026-12-05, dsl/builtin_signals.json, in its order.)
SIGNAL_NAMES: Final[tuple[str, ...]] = (
    "ad.campaign_id", "ad.creative_id", "ad.format", "ad.placement", "cart.count",
    "cart.items", "cart.value", "consent.level", "consent.reason", "device.browser",
    "device.os", "device.type", "geo.city", "geo.country", "geo.latitude", "geo.longitude",
    "geo.region", "geo.timezone", "ortb.app_bundle", "ortb.categories", "ortb.channel",
    "ortb.imp_count", "ortb.imp_formats", "ortb.imp_h", "ortb.imp_types", "ortb.imp_w",
    "ortb.interstitial", "ortb.publisher_id", "ortb.site_domain", "request.language",
    "request.page_category", "request.page_type", "request.path", "request.placement",
    "request.referrer", "request.utm_campaign", "request.utm_content", "request.utm_medium",
    "request.utm_source", "request.utm_term", "time.daypart", "time.hour", "time.weekday",
    "user.age", "user.buyer_uid", "user.capped", "user.erased", "user.exchange_uid",
    "user.gender", "user.ifa", "user.is_new", "user.segments", "user.visits",
)  # fmt: skip
_INDEX: Final = {name: i for i, name in enumerate(SIGNAL_NAMES)}
# Append only, never reorder: format 2 stores these values as their index here (the values of
# the built-in enumerations of 2026-12-06, dsl/builtin_signals.json, sorted).
SIGNAL_VALUES: Final[tuple[str, ...]] = (
    "account", "afternoon", "android", "app", "audio", "banner", "bot", "cart", "category",
    "checkout", "chrome", "chromeos", "contextual", "coppa", "ctv", "default", "desktop",
    "dooh", "edge", "evening", "fri", "firefox", "gpc", "gpp_malformed", "gpp_unsupported",
    "granted", "home", "ios", "ipados", "json", "linux", "macos", "mobile", "mon", "morning",
    "native", "night", "openrtb", "opera", "other", "personal", "product", "safari",
    "samsung", "sat", "search", "site", "site_denied", "site_unreadable", "sun", "tablet",
    "tcf_expired", "tcf_malformed", "tcf_missing", "tcf_no_vendor_configured",
    "tcf_purpose_denied", "tcf_restricted", "tcf_vendor_denied", "thu", "tue",
    "usnat_child", "usnat_opted_out", "usp_malformed", "usp_opted_out", "vast", "video",
    "wed", "windows",
)  # fmt: skip
_VALUE_EXT: Final = 1  # the MessagePack extension type of a coded value
_DECODED: Final[dict[tuple[int, Any], str]] = {
    (_VALUE_EXT, bytes([i])): value for i, value in enumerate(SIGNAL_VALUES)
}
_CODED_VALUES: Final[dict[object, object]] = {
    value: msgspec.msgpack.Ext(_VALUE_EXT, bytes([i])) for i, value in enumerate(SIGNAL_VALUES)
}
# the signal names of a request come in a few orders (one per provider set and consent): their
# coded forms are cached both ways, so a record costs no per-signal Python work
_CACHED: Final = 512
_CODED: Final[dict[tuple[str, ...], tuple[int | str, ...]]] = {}
_NAMES: Final[dict[tuple[int | str, ...], tuple[str, ...]]] = {}


def _value_of(value: Ext) -> str:
    code, data = value.code, bytes(value.data)
    if code != _VALUE_EXT or len(data) != 1:
        raise msgspec.ValidationError(f"a stored decision holds an unknown extension {code}")
    index = data[0]
    if index >= len(SIGNAL_VALUES):
        raise msgspec.ValidationError(
            f"signal value number {index} is not a built-in value of this version"
            " (a record written by a later slotwise?)"
        )
    return SIGNAL_VALUES[index]


_FORMAT: Final = 2
_astuple: Final = msgspec.structs.astuple
_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(Stored1 | Stored2)
_json_decoder = msgspec.json.Decoder(DecisionRecord)
# msgpack array headers (fixarray, array 16, array 32): JSON text never starts with them
_ARRAY_HEADERS: Final = frozenset((*range(0x90, 0xA0), 0xDC, 0xDD))
_time_decoder = msgspec.msgpack.Decoder(StoredTime)
_json_time_decoder = msgspec.json.Decoder(JsonTime)


def _coded_names(names: tuple[str, ...]) -> tuple[int | str, ...]:
    coded = _CODED.get(names)
    if coded is None:
        if len(_CODED) >= _CACHED:
            _CODED.clear()
        coded = _CODED[names] = tuple(map(_INDEX.get, names, names))
    return coded


def _signal_names(coded: tuple[int | str, ...]) -> tuple[str, ...]:
    names = _NAMES.get(coded)
    if names is None:
        out = []
        for name in coded:
            if type(name) is int:
                if not 0 <= name < len(SIGNAL_NAMES):
                    raise msgspec.ValidationError(
                        f"signal number {name} is not a built-in signal of this version"
                        " (a record written by a later slotwise?)"
                    )
                name = SIGNAL_NAMES[name]
            out.append(name)
        if len(_NAMES) >= _CACHED:
            _NAMES.clear()
        names = _NAMES[coded] = tuple(out)  # type: ignore[arg-type]
    return names


def _hex(text: str) -> str | bytes:
    """``text`` as bytes when it is lowercase hexadecimal (what the proxy's ids are)."""
    # strip leaves any character that is not a lowercase hex digit: no fromhex raising (and
    # a ValueError made and caught) for the ids that are not hexadecimal, most of them
    if len(text) % 2 or len(text) < 8 or text.strip(_HEX_DIGITS):
        return text
    return bytes.fromhex(text)


_HEX_DIGITS: Final = "0123456789abcdef"


_HEX: Final[dict[str, str | bytes]] = {}  # policy versions, coded


def _values(values: Iterable[LogValue]) -> tuple[object, ...]:
    # only strings are coded: the others (a plugin's list too) go as they are, unhashed
    return tuple([_CODED_VALUES.get(v, v) if type(v) is str else v for v in values])


def _policy(version: str) -> str | bytes:
    coded = _HEX.get(version)
    if coded is None:
        if len(_HEX) >= _CACHED:
            _HEX.clear()
        coded = _HEX[version] = _hex(version)
    return coded


def encode_stored(record: DecisionRecord) -> bytes:
    """The compact stored form of ``record`` (see the module docstring)."""
    signals = record.signals
    record_slots = list(map(_astuple, record.slots))
    # (slot, the variant's index among the candidates or itself, None for one over the number
    # of candidates or the probability, candidates); inline: a call per slot costs more
    slots = [
        (n, c.index(v) if v in c else v, None if c and p == 1.0 / len(c) else p, c)
        for n, v, p, c in record_slots
    ]
    eligible: Choices | None = list(record.eligible.items())
    if eligible == [(s[0], s[3]) for s in record_slots]:
        eligible = None
    outcome = record.outcome
    # a tuple in Stored2's order (with its tag first) encodes as Stored2 does, without
    # building one: this runs once per decision on the request path
    return _encoder.encode(
        (
            _FORMAT,
            _hex(record.id),
            record.ts,
            record.campaign,
            _policy(record.policy_version),
            record.model_version,
            record.holdout,
            record.holdout_share,
            record.personal,
            _coded_names(tuple(signals)),
            _values(signals.values()),
            slots,
            eligible,
            None if outcome is None else _astuple(outcome),
            record.format,
            record.fail_open,
            record.trigger,
            record.trigger_offer,
            record.offer,
            list(record.removed.items()),
        )
    )


def is_compact(data: bytes) -> bool:
    """Whether ``data`` is in the stored form (else it is a JSON record)."""
    return bool(data) and data[0] in _ARRAY_HEADERS


def decode_stored(data: bytes) -> DecisionRecord:
    """A decision record as the decisions log holds it: the stored form or JSON.

    Raises msgspec.DecodeError or msgspec.ValidationError (the JSON decoder's errors, or a
    stored record from a later format) for data that is neither.
    """
    if not is_compact(data):
        return _json_decoder.decode(data)
    stored = _decoder.decode(data)
    values = stored.signal_values
    names = _signal_names(stored.signal_names)
    if len(names) != len(values):
        raise msgspec.ValidationError("a stored decision has as many signal names as values")
    record_id, policy_version = stored.id, stored.policy_version
    if isinstance(stored, Stored2):
        # inline, a call per slot and value costs more; what does not fit is found again below
        try:
            slots = [
                SlotRecord(n, c[v] if type(v) is int else v, 1.0 / len(c) if p is None else p, c)  # type: ignore[arg-type]
                for n, v, p, c in stored.slots
            ]
            values = tuple([_DECODED[v.code, v.data] if type(v) is Ext else v for v in values])
        except (IndexError, ZeroDivisionError, KeyError):
            slots = list(map(_slot_of, stored.slots))
            values = tuple([_value_of(v) if type(v) is Ext else v for v in values])
        record_id, policy_version = _text(record_id, "id"), _text(policy_version, "policy version")
    else:
        slots = [SlotRecord(*s) for s in stored.slots]
    eligible = stored.eligible
    outcome = stored.outcome
    return DecisionRecord(
        id=record_id,
        ts=stored.ts,
        campaign=stored.campaign,
        policy_version=policy_version,
        model_version=stored.model_version,
        holdout=stored.holdout,
        holdout_share=stored.holdout_share,
        personal=stored.personal,
        signals=dict(zip(names, values, strict=True)),
        slots=slots,
        eligible=dict(eligible) if eligible is not None else {s.slot: s.candidates for s in slots},
        outcome=None if outcome is None else OutcomeRecord(*outcome),
        format=stored.format,
        fail_open=stored.fail_open,
        trigger=stored.trigger,
        trigger_offer=stored.trigger_offer,
        offer=stored.offer,
        removed=dict(stored.removed),
    )


def _slot_of(slot: tuple[str, int | str | None, float | None, tuple[str, ...]]) -> SlotRecord:
    name, variant, probability, candidates = slot
    if type(variant) is int:
        if not 0 <= variant < len(candidates):
            raise msgspec.ValidationError(
                f"slot {name!r}: variant number {variant} is not a candidate"
            )
        variant = candidates[variant]
    if probability is None:
        if not candidates:
            raise msgspec.ValidationError(f"slot {name!r}: no probability and no candidates")
        probability = 1.0 / len(candidates)
    return SlotRecord(name, variant, probability, candidates)  # type: ignore[arg-type]


def _text(value: Any, what: str) -> str:
    if type(value) is bytes:
        return value.hex()
    if type(value) is not str:
        raise msgspec.ValidationError(f"a stored decision's {what} is neither text nor bytes")
    return value


def stored_ts(data: bytes) -> float:
    """The record's ``ts`` without decoding the rest (either form)."""
    if is_compact(data):
        return _time_decoder.decode(data).ts
    return _json_time_decoder.decode(data).ts
