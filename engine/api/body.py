"""Reading a request body: size limits (before and after gzip), decompression, JSON."""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from fastapi import Request

from engine.api.errors import ApiError


def too_large(what: str, size: int, limit: int) -> ApiError:
    """The 413 for a body or event over its limit."""
    return ApiError(413, "too_large", f"{what} is {size} bytes, over the {limit}-byte limit")


async def raw_body(request: Request, limit: int) -> bytes:
    """The body as sent (still compressed), refused with 413 once it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large("the request", int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large("the request", size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def decoded(request: Request, body: bytes, limit: int) -> bytes:
    """The body with its ``Content-Encoding`` (gzip, or none) undone, at most ``limit`` bytes."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise ApiError(415, "unsupported_encoding", f"Content-Encoding {encoding!r}: use gzip")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as error:
        raise ApiError(400, "invalid_gzip", f"the body is not valid gzip: {error}") from None
    if len(out) > limit:
        raise ApiError(413, "too_large", f"the decompressed request is over the {limit}-byte limit")
    if not inflater.eof:
        raise ApiError(400, "invalid_gzip", "the gzip body is truncated")
    return out


def parse_json(body: bytes) -> Any:
    """The body as JSON, or 400."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ApiError(400, "invalid_json", f"the body is not JSON: {error}") from None


async def json_body(request: Request, limit: int) -> tuple[bytes, Any]:
    """The wire bytes (for signatures) and the decoded JSON of a request body."""
    body = await raw_body(request, limit)
    return body, parse_json(decoded(request, body, limit))
