"""Decoding IAB TCF v2 TC strings (the ``euconsent-v2`` cookie, the ``gdpr_consent`` parameter).

A TC string is one or more base64url segments separated by ``.``; the first is the core
segment, a bit string laid out as in the IAB "Consent string and vendor list formats v2"
specification::

    Version 6 | Created 36 | LastUpdated 36 (deciseconds since the epoch) | CmpId 12 |
    CmpVersion 12 | ConsentScreen 6 | ConsentLanguage 12 (two 6-bit letters) |
    VendorListVersion 12 | TcfPolicyVersion 6 | IsServiceSpecific 1 | UseNonStandardTexts 1 |
    SpecialFeatureOptIns 12 | PurposesConsent 24 | PurposesLITransparency 24 |
    PurposeOneTreatment 1 | PublisherCC 12 |
    vendor consents (MaxVendorId 16, IsRangeEncoding 1, then a bit field of MaxVendorId bits or
    NumEntries 12 x [IsARange 1, StartOrOnlyVendorId 16, EndVendorId 16 if a range]) |
    vendor legitimate interests (same layout) |
    NumPubRestrictions 12 x [PurposeId 6, RestrictionType 2, NumEntries 12 x ranges as above]

Anything that does not decode to exactly that (bad base64, wrong version, a field running
past the end, a range whose end precedes its start) raises :class:`TCFError`. Other segments
(disclosed vendors, publisher TC) are not needed for the consent decision and are skipped.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Set
from dataclasses import dataclass

_BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")
# Longest core segment accepted. Real ones are a few hundred characters (ranges keep even
# thousands of vendors short); cookies cannot exceed 4 KiB anyway.
MAX_CORE_LENGTH = 8_192


class TCFError(ValueError):
    """The string is not a well-formed TCF v2 TC string."""


class VendorSet(Set[int]):
    """Vendor ids as the string encodes them: a bit field or ranges, never expanded.

    A hostile string can declare 4095 ranges of 65535 vendors each; expanding that on the
    request path would take seconds, so membership is answered from the encoding itself.
    """

    __slots__ = ("_bits", "_width", "_ranges")

    def __init__(self, bits: int = 0, width: int = 0, ranges: tuple[tuple[int, int], ...] = ()):
        self._bits = bits
        self._width = width
        self._ranges = ranges

    def __contains__(self, vendor: object) -> bool:
        if not isinstance(vendor, int) or vendor < 1:
            return False
        if self._ranges:
            return any(start <= vendor <= end for start, end in self._ranges)
        return vendor <= self._width and bool(self._bits >> (self._width - vendor) & 1)

    def __iter__(self) -> Iterator[int]:
        if self._ranges:
            seen: set[int] = set()
            for start, end in self._ranges:
                seen.update(range(start, end + 1))
            return iter(sorted(seen))
        return (i for i in range(1, self._width + 1) if self._bits >> (self._width - i) & 1)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"VendorSet({sorted(self)!r})"


@dataclass(frozen=True, slots=True)
class Restriction:
    """A publisher restriction: for ``purpose``, ``kind`` 0 not allowed, 1 consent, 2 LI."""

    purpose: int
    kind: int
    vendors: VendorSet


@dataclass(frozen=True, slots=True)
class TCString:
    """The decoded core segment of a TCF v2 TC string."""

    version: int
    created: float  # seconds since the epoch
    last_updated: float
    cmp_id: int
    cmp_version: int
    consent_screen: int
    consent_language: str
    vendor_list_version: int
    policy_version: int
    is_service_specific: bool
    use_non_standard_texts: bool
    special_feature_opt_ins: frozenset[int]
    purpose_consents: frozenset[int]
    purpose_legitimate_interests: frozenset[int]
    purpose_one_treatment: bool
    publisher_country: str
    max_vendor_consent: int
    vendor_consents: VendorSet
    max_vendor_legitimate_interest: int
    vendor_legitimate_interests: VendorSet
    restrictions: tuple[Restriction, ...]

    def restricted(self, vendor: int, purpose: int, kind: int) -> bool:
        """Whether the publisher placed a restriction of ``kind`` on ``vendor`` for ``purpose``."""
        return any(
            r.purpose == purpose and r.kind == kind and vendor in r.vendors
            for r in self.restrictions
        )


class _Bits:
    """A cursor over a big-endian bit string held in one Python int."""

    __slots__ = ("_value", "_length", "_pos")

    def __init__(self, data: bytes) -> None:
        self._value = int.from_bytes(data, "big")
        self._length = len(data) * 8
        self._pos = 0

    def read(self, width: int, field: str) -> int:
        end = self._pos + width
        if end > self._length:
            raise TCFError(
                f"truncated: {field} needs bits {self._pos}..{end - 1}, "
                f"the segment has {self._length}"
            )
        value = (self._value >> (self._length - end)) & ((1 << width) - 1)
        self._pos = end
        return value

    def flag(self, field: str) -> bool:
        return self.read(1, field) == 1

    def bitset(self, width: int, field: str) -> frozenset[int]:
        """Ids 1..width whose bit is set (bit 1 is the first, most significant, bit)."""
        bits = self.read(width, field)
        return frozenset(i for i in range(1, width + 1) if bits >> (width - i) & 1)

    def letters(self, field: str) -> str:
        first, second = self.read(6, field), self.read(6, field)
        if first > 25 or second > 25:
            raise TCFError(f"{field} is not two letters A-Z")
        return chr(ord("A") + first) + chr(ord("A") + second)

    def ranges(self, field: str, limit: int | None = None) -> VendorSet:
        """``NumEntries 12`` then that many single ids or ``start..end`` ranges."""
        runs: list[tuple[int, int]] = []
        for _ in range(self.read(12, f"{field} entry count")):
            is_range = self.flag(field)
            start = self.read(16, field)
            end = self.read(16, field) if is_range else start
            if start < 1 or end < start or (limit is not None and end > limit):
                raise TCFError(f"{field}: bad vendor range {start}..{end}")
            runs.append((start, end))
        return VendorSet(ranges=tuple(runs)) if runs else VendorSet()

    def vendor_section(self, field: str) -> tuple[int, VendorSet]:
        max_vendor = self.read(16, f"{field} MaxVendorId")
        if self.flag(f"{field} IsRangeEncoding"):
            return max_vendor, self.ranges(field, max_vendor)
        return max_vendor, VendorSet(self.read(max_vendor, field), max_vendor)


def decode(tc_string: str) -> TCString:
    """Decode the core segment of a TCF v2 TC string; raise :class:`TCFError` if malformed."""
    core = tc_string.strip().split(".", 1)[0]
    if not core or len(core) > MAX_CORE_LENGTH:
        raise TCFError(f"empty, or a core segment longer than {MAX_CORE_LENGTH} characters")
    if not _BASE64URL.match(core):
        raise TCFError("not base64url (allowed: A-Z a-z 0-9 - _)")
    try:
        data = base64.urlsafe_b64decode(core + "=" * (-len(core) % 4))
    except (binascii.Error, ValueError) as exc:
        raise TCFError(f"bad base64url: {exc}") from None
    bits = _Bits(data)
    version = bits.read(6, "Version")
    if version != 2:
        raise TCFError(f"version {version}, not a TCF v2 string")
    created = bits.read(36, "Created") / 10.0
    last_updated = bits.read(36, "LastUpdated") / 10.0
    cmp_id = bits.read(12, "CmpId")
    cmp_version = bits.read(12, "CmpVersion")
    consent_screen = bits.read(6, "ConsentScreen")
    language = bits.letters("ConsentLanguage")
    vendor_list_version = bits.read(12, "VendorListVersion")
    policy_version = bits.read(6, "TcfPolicyVersion")
    service_specific = bits.flag("IsServiceSpecific")
    non_standard = bits.flag("UseNonStandardTexts")
    special_features = bits.bitset(12, "SpecialFeatureOptIns")
    purposes = bits.bitset(24, "PurposesConsent")
    purposes_li = bits.bitset(24, "PurposesLITransparency")
    purpose_one = bits.flag("PurposeOneTreatment")
    publisher_cc = bits.letters("PublisherCC")
    max_consent, vendors = bits.vendor_section("VendorConsents")
    max_li, vendors_li = bits.vendor_section("VendorLegitimateInterests")
    restrictions = []
    for _ in range(bits.read(12, "NumPubRestrictions")):
        purpose = bits.read(6, "PubRestriction PurposeId")
        kind = bits.read(2, "PubRestriction RestrictionType")
        restrictions.append(Restriction(purpose, kind, bits.ranges("PubRestriction")))
    if cmp_id == 0 or created == 0 or last_updated == 0:
        raise TCFError("CmpId, Created and LastUpdated must be set")
    return TCString(
        version=version,
        created=created,
        last_updated=last_updated,
        cmp_id=cmp_id,
        cmp_version=cmp_version,
        consent_screen=consent_screen,
        consent_language=language,
        vendor_list_version=vendor_list_version,
        policy_version=policy_version,
        is_service_specific=service_specific,
        use_non_standard_texts=non_standard,
        special_feature_opt_ins=special_features,
        purpose_consents=purposes,
        purpose_legitimate_interests=purposes_li,
        purpose_one_treatment=purpose_one,
        publisher_country=publisher_cc,
        max_vendor_consent=max_consent,
        vendor_consents=vendors,
        max_vendor_legitimate_interest=max_li,
        vendor_legitimate_interests=vendors_li,
        restrictions=tuple(restrictions),
    )
