"""Who is calling: write keys for ingestion, named Bearer tokens with roles for management.

Every secret is compared with :func:`hmac.compare_digest`, against every configured secret
(no early exit), so timing tells an attacker neither a prefix nor which entry matched.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """A management token's role."""

    ADMIN = "admin"
    OPS = "ops"
    CSM = "csm"
    READONLY = "readonly"


class Permission(StrEnum):
    """What a management endpoint needs (the value says it in words, for 403 messages)."""

    READ = "read"
    AUDIT = "read the audit log"
    STAGES = "override stages"
    TASKS = "complete tasks"
    DEAD_LETTERS = "replay or discard dead letters"
    PLAYBOOKS = "publish playbook sets"


#: Every role reads (accounts, events, tasks, playbooks, dead letters, status); writes differ.
GRANTS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.OPS: frozenset(
        {Permission.READ, Permission.AUDIT, Permission.DEAD_LETTERS, Permission.PLAYBOOKS}
    ),
    Role.CSM: frozenset({Permission.READ, Permission.TASKS}),
    Role.READONLY: frozenset({Permission.READ}),
}


@dataclass(frozen=True, slots=True)
class Principal:
    """A caller of the management API: the token's name (what audit entries say) and role."""

    name: str
    role: Role

    def may(self, permission: Permission) -> bool:
        """Whether this caller's role grants ``permission``."""
        return permission in GRANTS[self.role]


@dataclass(frozen=True, slots=True)
class _Secret:
    name: str
    secret: bytes
    role: Role | None = None


class ConfigError(ValueError):
    """A malformed ``HOURGLASS_WRITE_KEYS`` or ``HOURGLASS_TOKENS`` setting."""


def _entries(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _match(secrets: tuple[_Secret, ...], offered: str) -> _Secret | None:
    """The entry whose secret is ``offered``, comparing against all of them in constant time."""
    candidate = offered.encode()
    found: _Secret | None = None
    for entry in secrets:
        if hmac.compare_digest(entry.secret, candidate):
            found = entry
    return found


class WriteKeys:
    """The ingestion write keys (``name:key,...``): one per source, so sources can rotate."""

    def __init__(self, text: str) -> None:
        secrets: list[_Secret] = []
        for entry in _entries(text):
            name, sep, key = entry.partition(":")
            if not sep or not name or not key:
                raise ConfigError(f"HOURGLASS_WRITE_KEYS: expected name:key, found {name!r}")
            secrets.append(_Secret(name, key.encode()))
        self._secrets = tuple(secrets)

    def __len__(self) -> int:
        return len(self._secrets)

    def source(self, offered: str | None) -> str | None:
        """The source name of a valid write key, or None."""
        if not offered:
            return None
        entry = _match(self._secrets, offered)
        return entry.name if entry else None


class Tokens:
    """The management tokens (``name:role:token,...``)."""

    def __init__(self, text: str) -> None:
        secrets: list[_Secret] = []
        for entry in _entries(text):
            parts = entry.split(":", 2)
            if len(parts) != 3 or not parts[0] or not parts[2]:
                shown = parts[0] if parts else entry
                raise ConfigError(f"HOURGLASS_TOKENS: expected name:role:token, found {shown!r}")
            name, role, token = parts
            try:
                parsed = Role(role)
            except ValueError:
                roles = ", ".join(Role)
                raise ConfigError(
                    f"HOURGLASS_TOKENS: {name}: unknown role {role!r} (expected {roles})"
                ) from None
            secrets.append(_Secret(name, token.encode(), parsed))
        self._secrets = tuple(secrets)

    def __len__(self) -> int:
        return len(self._secrets)

    def principal(self, offered: str | None) -> Principal | None:
        """The caller a Bearer token names, or None."""
        if not offered:
            return None
        entry = _match(self._secrets, offered)
        if entry is None or entry.role is None:
            return None
        return Principal(entry.name, entry.role)


def basic_user(authorization: str | None) -> str | None:
    """The user name of an HTTP Basic ``Authorization`` header (Segment's SDKs put the write
    key there, with an empty password), or None."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, _, _ = decoded.partition(":")
    return user or None


def bearer_token(authorization: str | None) -> str | None:
    """The token of a ``Bearer`` ``Authorization`` header, or None."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def signature_ok(secret: str, body: bytes, offered: str | None) -> bool:
    """Whether ``offered`` is the hex HMAC-SHA1 of ``body`` with ``secret`` (Segment Webhooks'
    ``X-Signature``), compared in constant time."""
    if not offered:
        return False
    expected = hmac.new(secret.encode(), body, "sha1").hexdigest()
    return hmac.compare_digest(expected.encode(), offered.strip().lower().encode())
