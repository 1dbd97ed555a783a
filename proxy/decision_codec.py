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
the format's number (1), so a later form can be told apart. :func:`decode_stored` reads both
this form and the JSON records earlier versions stored (and converted logs hold); JSON stays
the format of log files and exports (slotwise.proxy.learn.log).
"""

from __future__ import annotations

from typing import Final

import msgspec

from slotwise.proxy.decision_log import DecisionRecord, LogValue, OutcomeRecord, SlotRecord

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
# the signal names of a request come in a few orders (one per provider set and consent): their
# coded forms are cached both ways, so a record costs no per-signal Python work
_CACHED: Final = 512
_CODED: dict[tuple[str, ...], tuple[int | str, ...]] = {}
_NAMES: dict[tuple[int | str, ...], tuple[str, ...]] = {}

_Choices = list[tuple[str, tuple[str, ...]]]


class _Stored(msgspec.Struct, frozen=True, array_like=True, tag=1):  # tag: _FORMAT
    """Format 1 (the tag is the array's first element): DecisionRecord's fields in order."""

    id: str
    ts: float
    campaign: str
    policy_version: str
    model_version: str
    holdout: bool
    holdout_share: float
    personal: bool
    signal_names: tuple[int | str, ...]  # a built-in signal's index in SIGNAL_NAMES, or a name
    signal_values: tuple[LogValue, ...]
    slots: list[tuple[str, str | None, float, tuple[str, ...]]]
    eligible: _Choices | None  # None: one entry per slot, its candidates
    outcome: tuple[float, float, float, float, float] | None
    format: str | None
    fail_open: str | None
    trigger: str | None
    trigger_offer: str | None
    offer: str | None
    removed: _Choices


_FORMAT: Final = 1
_astuple = msgspec.structs.astuple
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Stored)
_json_decoder = msgspec.json.Decoder(DecisionRecord)
# msgpack array headers (fixarray, array 16, array 32): JSON text never starts with them
_ARRAY_HEADERS: Final = frozenset((*range(0x90, 0xA0), 0xDC, 0xDD))


class StoredTime(msgspec.Struct, array_like=True):
    """The leading fields of the stored form, for readers that skip by time."""

    tag: int
    id: str
    ts: float


_time_decoder = msgspec.msgpack.Decoder(StoredTime)


class _JsonTime(msgspec.Struct):
    ts: float = 0.0


_json_time_decoder = msgspec.json.Decoder(_JsonTime)


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


def encode_stored(record: DecisionRecord) -> bytes:
    """The compact stored form of ``record`` (see the module docstring)."""
    signals = record.signals
    slots = list(map(_astuple, record.slots))
    eligible: _Choices | None = list(record.eligible.items())
    if eligible == [(s[0], s[3]) for s in slots]:
        eligible = None
    outcome = record.outcome
    # a tuple in _Stored's order (with its tag first) encodes as _Stored does, without
    # building one: this runs once per decision on the request path
    return _encoder.encode(
        (
            _FORMAT,
            record.id,
            record.ts,
            record.campaign,
            record.policy_version,
            record.model_version,
            record.holdout,
            record.holdout_share,
            record.personal,
            _coded_names(tuple(signals)),
            tuple(signals.values()),
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
    slots = [SlotRecord(*s) for s in stored.slots]
    eligible = stored.eligible
    outcome = stored.outcome
    return DecisionRecord(
        id=stored.id,
        ts=stored.ts,
        campaign=stored.campaign,
        policy_version=stored.policy_version,
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


def stored_ts(data: bytes) -> float:
    """The record's ``ts`` without decoding the rest (either form)."""
    if is_compact(data):
        return _time_decoder.decode(data).ts
    return _json_time_decoder.decode(data).ts
