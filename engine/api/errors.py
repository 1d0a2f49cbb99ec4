"""Errors the API returns: one JSON shape (``success``, ``code``, ``message``) for every status.

Segment's SDKs read ``code`` and ``message`` from a failed response (analytics-python raises
``APIError(status, code, message)``), and retry only 429 and 5xx.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import redis
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

log = logging.getLogger(__name__)


class Error(BaseModel):
    """A failed request: a stable machine code and a message for people."""

    success: Literal[False] = False
    code: str = Field(description="Stable machine-readable code, e.g. `unauthorized`.")
    message: str = Field(description="What went wrong, for people.")


class Rejected(BaseModel):
    """One invalid event: its index in the request, the offending field and why."""

    index: int = Field(ge=0)
    field: str
    reason: str


class IngestFailed(Error):
    """An ingestion request that stored nothing, with the invalid event(s) if that is why."""

    rejected: list[Rejected] = Field(default_factory=list)


class ProblemItem(BaseModel):
    """One validation problem (FastAPI's shape: ``loc``, ``msg``, ``type``)."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int]
    msg: str
    type: str


class Invalid(BaseModel):
    """A request whose body or parameters do not validate (422)."""

    model_config = ConfigDict(extra="allow")

    detail: list[ProblemItem]
    problems: list[str] = Field(
        default_factory=list, description="Each problem as one line (`file:line: message`)."
    )


class ApiError(Exception):
    """Raised by routes and dependencies; rendered as :class:`Error` with ``status``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        rejected: list[Rejected] | None = None,
        invalid: Invalid | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.rejected = rejected
        self.invalid = invalid


def unprocessable(items: list[ProblemItem]) -> ApiError:
    """A 422 in the validation-error shape (``detail`` items, like FastAPI's own 422s)."""
    lines = [item.msg for item in items]
    return ApiError(422, "invalid", "; ".join(lines), invalid=Invalid(detail=items, problems=lines))


_DESCRIPTIONS = {
    400: "The body is not JSON (or not a valid event, or not a cursor this API returned).",
    401: "Missing or unknown credentials.",
    403: "The token's role does not allow this.",
    404: "No such resource.",
    413: "Over the per-event or per-request size limit.",
    415: "An unsupported Content-Encoding.",
    429: "Backlog over its limit: retry after `Retry-After` seconds.",
    503: "Redis (or the task broker) is unavailable: retry.",
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entries for these error statuses (for the OpenAPI document)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": Error, "description": _DESCRIPTIONS[status]}
        if status == 429:
            entry["headers"] = {
                "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
            }
        out[status] = entry
    return out


def _response(status: int, body: BaseModel, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(jsonable_encoder(body), status_code=status, headers=headers)


async def _api_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    if error.invalid is not None:
        return _response(422, error.invalid, error.headers)
    body: Error
    if error.rejected is not None:
        body = IngestFailed(code=error.code, message=error.message, rejected=error.rejected)
    else:
        body = Error(code=error.code, message=error.message)
    return _response(error.status, body, error.headers)


async def _http_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    codes = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}
    code = codes.get(error.status_code, "http_error")
    body = Error(code=code, message=str(error.detail))
    return _response(error.status_code, body, getattr(error, "headers", None))


async def _invalid(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    items = [
        ProblemItem(
            loc=[part if isinstance(part, int) else str(part) for part in item.get("loc", ())],
            msg=str(item.get("msg", "")),
            type=str(item.get("type", "")),
        )
        for item in error.errors()
    ]
    lines = [f"{'.'.join(str(p) for p in item.loc)}: {item.msg}" for item in items]
    return _response(422, Invalid(detail=items, problems=lines))


async def _redis_down(_: Request, error: Exception) -> JSONResponse:
    log.warning("Redis unavailable: %s", error)
    body = Error(code="unavailable", message="Redis is unavailable; retry shortly")
    return _response(503, body, {"Retry-After": "1"})


def install(app: FastAPI) -> None:
    """Register the handlers that render every error as :class:`Error` (or :class:`Invalid`)."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(redis.RedisError, _redis_down)
