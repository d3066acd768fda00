"""Request bodies as Sentry SDKs send them: plain, or ``Content-Encoding`` gzip, deflate or br.

Decompression is incremental and stops as soon as the output passes the cap, so a small body that
inflates to gigabytes (a decompression bomb) costs at most the cap in memory and a little CPU.
"""

from __future__ import annotations

import zlib

import brotli  # type: ignore[import-untyped]  # brotli-stubs 1.2.1 lacks output_buffer_limit


class BodyError(ValueError):
    """The body cannot be decoded: its encoding is unknown or it is not what it claims to be."""


class TooLarge(BodyError):
    """The decoded body is larger than the cap."""


ENCODINGS = ("identity", "gzip", "x-gzip", "deflate", "br")
CHUNK = 256 * 1024


def decode(body: bytes, encoding: str | None, limit: int) -> bytes:
    """``body`` without its ``Content-Encoding``; :class:`TooLarge` past ``limit`` bytes decoded."""
    name = (encoding or "identity").strip().lower()
    if name in ("", "identity"):
        if len(body) > limit:
            raise TooLarge(f"body: larger than {limit} bytes")
        return body
    if name in ("gzip", "x-gzip"):
        return _inflate(body, zlib.MAX_WBITS | 16, limit)
    if name == "deflate":
        # RFC 9110's deflate is zlib-wrapped; some clients send raw deflate: take both
        wbits = zlib.MAX_WBITS if body[:1] == b"\x78" else -zlib.MAX_WBITS
        return _inflate(body, wbits, limit)
    if name == "br":
        return _unbrotli(body, limit)
    raise BodyError(f"Content-Encoding: {encoding!r} is not one of gzip, deflate, br")


def _inflate(body: bytes, wbits: int, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    out = bytearray()
    data = body
    try:
        while True:
            # a bounded piece at a time: a max_length of the whole cap would make zlib allocate it up front
            out += inflater.decompress(data, min(CHUNK, limit + 1 - len(out)))
            if len(out) > limit:
                raise TooLarge(f"body: larger than {limit} bytes decompressed")
            data = inflater.unconsumed_tail
            if inflater.eof or not data:
                break
        if not inflater.eof:
            raise BodyError("body: truncated compressed data")
    except zlib.error as exc:
        raise BodyError(f"body: not valid compressed data ({exc})") from None
    return bytes(out)


def _unbrotli(body: bytes, limit: int) -> bytes:
    decompressor = brotli.Decompressor()
    out = bytearray()
    try:
        piece = decompressor.process(body, output_buffer_limit=CHUNK)
        out += piece
        while piece and len(out) <= limit and not decompressor.is_finished():
            piece = decompressor.process(b"", output_buffer_limit=CHUNK)  # nothing more out: truncated
            out += piece
    except brotli.error as exc:
        raise BodyError(f"body: not valid brotli data ({exc})") from None
    if len(out) > limit:
        raise TooLarge(f"body: larger than {limit} bytes decompressed")
    if not decompressor.is_finished():
        raise BodyError("body: truncated compressed data")
    return bytes(out)
