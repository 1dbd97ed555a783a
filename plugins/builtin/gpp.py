"""Decoding IAB Global Privacy Platform strings (OpenRTB ``regs.gpp``) and US Privacy strings.

A GPP string is a header and its sections joined by ``~``, as the IAB "Global Privacy Platform
String" specification lays them out::

    header:  Type 6 (= 3) | Version 6 (= 1) | Sections: Range(Fibonacci)
             Range(Fibonacci) = NumEntries 12 x [IsGroup 1, Fibonacci offset from the last id,
                                                 Fibonacci group length if a group]
    section: one per id of the header, in that order, each in its own encoding

Sections read here (the others are kept as text, not understood):

- 2, EU TCF v2: a TC string (:mod:`slotwise.plugins.builtin.tcf` decodes it);
- 6, US Privacy (uspv1): the four characters of a CCPA US Privacy string, ``1YNN``;
- 7, US National (usnat): a base64url bit string, "IAB Privacy's MSPA US National Section"::

    Version 6 | SharingNotice 2 | SaleOptOutNotice 2 | SharingOptOutNotice 2 |
    TargetedAdvertisingOptOutNotice 2 | SensitiveDataProcessingOptOutNotice 2 |
    SensitiveDataLimitUseNotice 2 | SaleOptOut 2 | SharingOptOut 2 | TargetedAdvertisingOptOut 2 |
    SensitiveDataProcessing 2 x 12 (16 in the 2024 layout) |
    KnownChildSensitiveDataConsents 2 x 2 (3 in the 2024 layout) | PersonalDataConsents 2 |
    MspaCoveredTransaction 2 | MspaOptOutOptionMode 2 | MspaServiceProviderMode 2
    then optional ``.`` sub-sections: SubsectionType 2 (1 = GPC) | Gpc 1

  Opt-outs are 0 not applicable, 1 opted out, 2 did not opt out. The 2024 layout is told apart
  by its length, not its version field: the IAB's own encoders wrote it under version 1 for a
  while.

Anything that does not decode to exactly that (bad base64url, a wrong type or version, a field
or a Fibonacci number running past the end, a section count that does not match the header, a
value outside its range) raises :class:`GPPError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TCF_EU_V2 = 2
US_PRIVACY = 6
US_NATIONAL = 7
# Longest GPP string accepted: real ones, a TC string and a few US sections, are under 2 KiB.
MAX_LENGTH = 8_192
# Section ids are small (the registry is below 30); a header naming more, or higher ones, is
# not a real one and must not make us expand hostile ranges.
_MAX_SECTIONS = 64
_MAX_SECTION_ID = 1_024
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_SIXBITS = {char: value for value, char in enumerate(_ALPHABET)}
_USP = re.compile(r"^1[YN-]{3}$")


class GPPError(ValueError):
    """The string is not a well-formed GPP string (or section)."""


@dataclass(frozen=True, slots=True)
class GPPString:
    """A decoded GPP header and its sections' text, by section id."""

    version: int
    section_ids: tuple[int, ...]
    sections: dict[int, str]


@dataclass(frozen=True, slots=True)
class UsPrivacy:
    """A US Privacy string (``1YNN``): each field ``Y``, ``N`` or ``-`` (not applicable)."""

    version: int
    notice: str
    opt_out_sale: str
    lspa_covered: str

    @property
    def opted_out(self) -> bool:
        """The user opted out of the sale of their personal information."""
        return self.opt_out_sale == "Y"


@dataclass(frozen=True, slots=True)
class UsNational:
    """The decoded US National (usnat) section."""

    version: int
    sharing_notice: int
    sale_opt_out_notice: int
    sharing_opt_out_notice: int
    targeted_advertising_opt_out_notice: int
    sensitive_data_processing_opt_out_notice: int
    sensitive_data_limit_use_notice: int
    sale_opt_out: int
    sharing_opt_out: int
    targeted_advertising_opt_out: int
    sensitive_data_processing: tuple[int, ...]
    known_child_sensitive_data_consents: tuple[int, ...]
    personal_data_consents: int
    mspa_covered_transaction: int
    mspa_opt_out_option_mode: int
    mspa_service_provider_mode: int
    gpc: bool | None  # None: no GPC sub-section

    @property
    def opted_out(self) -> bool:
        """The user opted out of the sale or sharing of their data, or of targeted ads."""
        return 1 in (self.sale_opt_out, self.sharing_opt_out, self.targeted_advertising_opt_out)

    @property
    def known_child_without_consent(self) -> bool:
        """The business knows the user is a child and has no consent to process their data."""
        return 1 in self.known_child_sensitive_data_consents


class _Bits:
    """A cursor over a base64url text read as bits, six per character (GPP's encoding)."""

    __slots__ = ("_value", "_length", "_pos")

    def __init__(self, text: str) -> None:
        if not text or not _BASE64URL.match(text):
            raise GPPError(f"not base64url: {text[:40]!r}")
        value = 0
        for char in text:
            value = value << 6 | _SIXBITS[char]
        self._value = value
        self._length = 6 * len(text)
        self._pos = 0

    @property
    def left(self) -> int:
        return self._length - self._pos

    def read(self, width: int, field: str) -> int:
        end = self._pos + width
        if end > self._length:
            raise GPPError(
                f"truncated: {field} needs bits {self._pos}..{end - 1} of {self._length}"
            )
        value = (self._value >> (self._length - end)) & ((1 << width) - 1)
        self._pos = end
        return value

    def fibonacci(self, field: str) -> int:
        """A Fibonacci-coded integer: bit i stands for F(i + 2) (1, 2, 3, 5...), ended by 11."""
        total, previous, fib, before = 0, 0, 1, 1
        while True:
            bit = self.read(1, field)
            if bit and previous:
                return total
            if bit:
                total += fib
            previous = bit
            fib, before = fib + before, fib


def decode(gpp: str) -> GPPString:
    """Decode a GPP string's header and split its sections; raise :class:`GPPError`."""
    text = gpp.strip()
    if not text or len(text) > MAX_LENGTH:
        raise GPPError(f"empty, or longer than {MAX_LENGTH} characters")
    header, *sections = text.split("~")
    bits = _Bits(header)
    kind = bits.read(6, "Type")
    if kind != 3:
        raise GPPError(f"header type {kind}, not 3 (a GPP header)")
    version = bits.read(6, "Version")
    if version != 1:
        raise GPPError(f"GPP version {version}, not 1")
    ids = _fibonacci_range(bits)
    if len(ids) != len(sections):
        raise GPPError(f"the header names {len(ids)} sections, the string has {len(sections)}")
    if len(set(ids)) != len(ids):
        raise GPPError("the header names a section twice")
    return GPPString(version, ids, dict(zip(ids, sections, strict=True)))


def _fibonacci_range(bits: _Bits) -> tuple[int, ...]:
    ids: list[int] = []
    last = 0
    for _ in range(bits.read(12, "Sections count")):
        group = bits.read(1, "Sections IsGroup")
        start = last + bits.fibonacci("Sections offset")
        end = start + bits.fibonacci("Sections group length") if group else start
        if end > _MAX_SECTION_ID or len(ids) + end - start + 1 > _MAX_SECTIONS:
            raise GPPError(f"section ids up to {end}: not a real GPP header")
        ids.extend(range(start, end + 1))
        last = end
    return tuple(ids)


def decode_us_privacy(text: str) -> UsPrivacy:
    """Decode a US Privacy string (``regs.us_privacy``, GPP section 6); raise GPPError."""
    value = text.strip().upper()
    if not _USP.match(value):
        raise GPPError(f"not a US Privacy string (version 1, then Y, N or - thrice): {text[:16]!r}")
    return UsPrivacy(1, value[1], value[2], value[3])


def decode_us_national(text: str) -> UsNational:
    """Decode a US National (usnat, GPP section 7) section; raise :class:`GPPError`."""
    core, *subsections = text.strip().split(".")
    bits = _Bits(core)
    version = bits.read(6, "Version")
    if version not in (1, 2):
        raise GPPError(f"usnat version {version}, not 1 or 2")
    names = (
        "SharingNotice",
        "SaleOptOutNotice",
        "SharingOptOutNotice",
        "TargetedAdvertisingOptOutNotice",
        "SensitiveDataProcessingOptOutNotice",
        "SensitiveDataLimitUseNotice",
        "SaleOptOut",
        "SharingOptOut",
        "TargetedAdvertisingOptOut",
    )
    head = [_choice(bits, name) for name in names]
    # 60 bits in all for the 2022 layout, 70 for the 2024 one (padded to 66 and 72)
    wide = version == 2 or bits.left + 24 >= 70
    sensitive = tuple(_choice(bits, "SensitiveDataProcessing") for _ in range(16 if wide else 12))
    child = tuple(_choice(bits, "KnownChildSensitiveDataConsents") for _ in range(3 if wide else 2))
    personal = _choice(bits, "PersonalDataConsents")
    covered = _choice(bits, "MspaCoveredTransaction")
    opt_out_mode = _choice(bits, "MspaOptOutOptionMode")
    provider_mode = _choice(bits, "MspaServiceProviderMode")
    gpc: bool | None = None
    for subsection in subsections:
        sub = _Bits(subsection)
        if sub.read(2, "SubsectionType") == 1:
            gpc = sub.read(1, "Gpc") == 1
    (
        sharing_notice,
        sale_notice,
        sharing_opt_out_notice,
        targeted_notice,
        sensitive_notice,
        limit_use_notice,
        sale,
        sharing,
        targeted,
    ) = head
    return UsNational(
        version=version,
        sharing_notice=sharing_notice,
        sale_opt_out_notice=sale_notice,
        sharing_opt_out_notice=sharing_opt_out_notice,
        targeted_advertising_opt_out_notice=targeted_notice,
        sensitive_data_processing_opt_out_notice=sensitive_notice,
        sensitive_data_limit_use_notice=limit_use_notice,
        sale_opt_out=sale,
        sharing_opt_out=sharing,
        targeted_advertising_opt_out=targeted,
        sensitive_data_processing=sensitive,
        known_child_sensitive_data_consents=child,
        personal_data_consents=personal,
        mspa_covered_transaction=covered,
        mspa_opt_out_option_mode=opt_out_mode,
        mspa_service_provider_mode=provider_mode,
        gpc=gpc,
    )


def _choice(bits: _Bits, field: str) -> int:
    value = bits.read(2, field)
    if value == 3:
        raise GPPError(f"{field} is 3, which no usnat field allows (0, 1 or 2)")
    return value
