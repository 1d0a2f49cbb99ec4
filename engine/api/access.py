"""Management access: a named Bearer token whose role grants the endpoint's permission."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from engine.api.auth import Permission, Principal
from engine.api.errors import ApiError
from engine.api.services import services

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearerToken",
    description="A named management token (HOURGLASS_TOKENS); its role decides what it may do.",
)


def require(permission: Permission) -> Callable[..., Principal]:
    """A dependency: the caller, if its token is known (else 401) and its role grants
    ``permission`` (else 403)."""

    def caller(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
    ) -> Principal:
        token = credentials.credentials if credentials is not None else None
        principal = services(request).tokens.principal(token)
        if principal is None:
            raise ApiError(401, "unauthorized", "a valid Bearer token is required")
        if not principal.may(permission):
            raise ApiError(
                403,
                "forbidden",
                f"token {principal.name!r} ({principal.role.value}) may not {permission.value}",
            )
        return principal

    return caller
