"""A small MaxMind DB (``.mmdb``) writer, enough to build test databases for the geo provider.

Follows the MaxMind DB File Format Specification 2.0: a binary search tree over IP bits
(24-bit records), 16 zero bytes, the data section, then ``\\xab\\xcd\\xefMaxMind.com`` and
the metadata map. Supports IPv4 trees and the data types a GeoIP2 City record uses (maps,
arrays, UTF-8 strings, unsigned integers, doubles, booleans).
"""

from __future__ import annotations

import ipaddress
import struct
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

_METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"


class UInt(int):
    """An unsigned integer written with a fixed MaxMind type (16, 32 or 64 bits)."""

    bits: int = 32


class UInt16(UInt):
    bits = 16


class UInt32(UInt):
    bits = 32


class UInt64(UInt):
    bits = 64


def _control(type_number: int, size: int) -> bytes:
    if size < 29:
        extra, size_bits = b"", size
    elif size < 285:
        extra, size_bits = bytes([size - 29]), 29
    elif size < 65_821:
        extra, size_bits = (size - 285).to_bytes(2, "big"), 30
    else:
        extra, size_bits = (size - 65_821).to_bytes(3, "big"), 31
    if type_number <= 7:
        return bytes([(type_number << 5) | size_bits]) + extra
    return bytes([size_bits, type_number - 7]) + extra


def encode(value: Any) -> bytes:
    """One value in the data-section encoding."""
    if isinstance(value, bool):
        return _control(14, int(value))
    if isinstance(value, str):
        raw = value.encode()
        return _control(2, len(raw)) + raw
    if isinstance(value, float):
        return _control(3, 8) + struct.pack(">d", value)
    if isinstance(value, int):
        if value < 0:
            raise ValueError("negative integers are not needed here")
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
        bits = value.bits if isinstance(value, UInt) else value.bit_length()
        kind = 5 if bits <= 16 else 6 if bits <= 32 else 9
        return _control(kind, len(raw)) + raw
    if isinstance(value, Mapping):
        body = b"".join(encode(str(k)) + encode(v) for k, v in value.items())
        return _control(7, len(value)) + body
    if isinstance(value, Sequence):
        return _control(11, len(value)) + b"".join(encode(v) for v in value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def write_mmdb(
    path: Path, networks: Mapping[str, Mapping[str, Any]], database_type: str = "GeoIP2-City"
) -> Path:
    """Write an IPv4 database mapping each CIDR network to its record."""
    data = bytearray()
    offsets: list[int] = []
    for record in networks.values():
        offsets.append(len(data))
        data += encode(record)
    # Trie: each node is [left, right]; a record is ("node", i), ("data", offset) or None.
    nodes: list[list[tuple[str, int] | None]] = [[None, None]]
    for (cidr, _), offset in zip(networks.items(), offsets, strict=True):
        network = ipaddress.IPv4Network(cidr)
        bits = int(network.network_address)
        node = 0
        for depth in range(network.prefixlen):
            bit = (bits >> (31 - depth)) & 1
            if depth == network.prefixlen - 1:
                nodes[node][bit] = ("data", offset)
                break
            child = nodes[node][bit]
            if child is None or child[0] != "node":
                nodes.append([None, None])
                nodes[node][bit] = ("node", len(nodes) - 1)
            node = nodes[node][bit][1]  # type: ignore[index]
    count = len(nodes)

    def value(record: tuple[str, int] | None) -> int:
        if record is None:
            return count
        kind, number = record
        return number if kind == "node" else count + 16 + number

    tree = b"".join(
        value(left).to_bytes(3, "big") + value(right).to_bytes(3, "big") for left, right in nodes
    )
    metadata = {
        "binary_format_major_version": UInt16(2),
        "binary_format_minor_version": UInt16(0),
        "build_epoch": UInt64(int(time.time())),
        "database_type": database_type,
        "description": {"en": "slotwise test database"},
        "ip_version": UInt16(4),
        "languages": ["en"],
        "node_count": UInt32(count),
        "record_size": UInt16(24),
    }
    path.write_bytes(tree + bytes(16) + bytes(data) + _METADATA_MARKER + encode(metadata))
    return path


def city_record(
    country: str, city: str, time_zone: str, region: str | None = None
) -> dict[str, Any]:
    """A record shaped like GeoIP2/GeoLite2 City's."""
    record: dict[str, Any] = {
        "city": {"geoname_id": 1, "names": {"en": city}},
        "country": {"iso_code": country, "names": {"en": country}},
        "location": {"latitude": 52.5, "longitude": 13.4, "time_zone": time_zone},
    }
    if region is not None:
        record["subdivisions"] = [{"iso_code": region, "names": {"en": region}}]
    return record
