"""A cap on every request body, enforced before FastAPI reads it (management bodies included:
FastAPI reads a body before it checks the caller's token)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.api.errors import Error

#: Larger than any playbook set the store accepts (16 MB of files, as JSON).
MAX_BODY_BYTES = 24 * 1024 * 1024


class TooLarge(HTTPException):
    """The body passed the limit while streaming in (rendered as a 413 ``Error``)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request is over the {limit}-byte limit")


class BodyLimit:
    """ASGI middleware: 413 for a body over ``limit`` bytes, declared or as it streams in."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise TooLarge(self.limit)
            return message

        await self.app(scope, counted, send)

    async def _refuse(self, send: Send) -> None:
        message = f"the request is over the {self.limit}-byte limit"
        body = Error(code="too_large", message=message).model_dump_json().encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
