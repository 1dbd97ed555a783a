"""Content codings of upstream bodies: decode to rewrite, then encode the same way again.

gzip and deflate come from the standard library; br only when the ``brotli`` package is
importable (it is optional). A body whose coding cannot be handled is passed through untouched.
"""

from __future__ import annotations

import gzip
import importlib
import zlib
from typing import Any, Final


def _optional(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


_brotli: Any = _optional("brotli")  # br support only where the package is installed

SUPPORTED_CODINGS: Final = frozenset(
    {b"gzip", b"x-gzip", b"deflate"} | ({b"br"} if _brotli is not None else set())
)


class EncodingError(ValueError):
    """A body that is not valid for its declared Content-Encoding, or an unknown coding."""


def codings(value: bytes | None) -> list[bytes]:
    """The codings of a Content-Encoding value, in the order they were applied."""
    if not value:
        return []
    return [c for c in (t.strip().lower() for t in value.split(b",")) if c and c != b"identity"]


def decode(body: bytes, applied: list[bytes], limit: int) -> bytes:
    """Undo ``applied`` codings (last applied first); refuse output larger than ``limit``."""
    for coding in reversed(applied):
        body = _decode_one(body, coding, limit)
    return body


def encode(body: bytes, applied: list[bytes]) -> bytes:
    """Apply ``applied`` codings in order (the inverse of :func:`decode`)."""
    for coding in applied:
        if coding in (b"gzip", b"x-gzip"):
            body = gzip.compress(body, compresslevel=5, mtime=0)
        elif coding == b"deflate":
            body = zlib.compress(body, 5)
        elif coding == b"br" and _brotli is not None:
            body = _brotli.compress(body, quality=4)
        else:
            raise EncodingError(f"cannot encode {coding.decode(errors='replace')!r}")
    return body


def _decode_one(body: bytes, coding: bytes, limit: int) -> bytes:
    try:
        if coding in (b"gzip", b"x-gzip"):
            out = _inflate(body, zlib.decompressobj(16 + zlib.MAX_WBITS), limit)
        elif coding == b"deflate":
            # RFC 9110 says zlib-wrapped; some servers send raw deflate, so accept both
            try:
                out = _inflate(body, zlib.decompressobj(zlib.MAX_WBITS), limit)
            except zlib.error:
                out = _inflate(body, zlib.decompressobj(-zlib.MAX_WBITS), limit)
        elif coding == b"br" and _brotli is not None:
            out = _brotli.decompress(body)
            if len(out) > limit:
                raise EncodingError(f"decoded body exceeds {limit} bytes")
        else:
            raise EncodingError(f"unsupported content coding {coding.decode(errors='replace')!r}")
    except (zlib.error, OSError, EOFError) as exc:
        raise EncodingError(f"body is not valid {coding.decode(errors='replace')}: {exc}") from exc
    except EncodingError:
        raise
    except Exception as exc:  # brotli.error has no stable import path across packages
        raise EncodingError(f"body is not valid {coding.decode(errors='replace')}: {exc}") from exc
    return bytes(out)


def _inflate(body: bytes, inflater: Any, limit: int) -> bytes:
    out = inflater.decompress(body, limit + 1)
    if len(out) > limit or inflater.unconsumed_tail:
        raise EncodingError(f"decoded body exceeds {limit} bytes")
    if not inflater.eof:
        raise EncodingError("compressed body is truncated")
    return bytes(out)
